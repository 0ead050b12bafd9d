"""``ros2 run vla_collect keyboard_teleop``: jog the arm from a terminal (no joystick needed).

Run it in its own terminal.  Each key press jogs for ``key_step`` seconds (holding a key
repeats it); the node publishes the target on ``/vla/command`` at ``rate`` Hz and a hold at the
measured position when it stops.  Keys also drive the recorder's services.
"""
from __future__ import annotations

import os
import queue
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import SetBool, Trigger

from vla_collect.teleop_base import TeleopBase, send_final_hold
from vla_collect.teleop import CARTESIAN, key_input
from vla_common.parameters import describe
from vla_common.shutdown import spin_until_signalled

HELP = """keyboard teleop (focus this terminal):
  joint mode     q/a w/s e/d r/f t/g y/h   joint1..joint6 + / -
  Cartesian mode w/s x   a/d y   q/e z   z/c yaw         (m toggles the mode)
  o / p  open / close the gripper     + / -  speed     space  hold
  recording:  1 start   2 stop (success)   3 stop (failure)   0 discard
  Ctrl-C quits (the arm holds where it is)"""


class KeyboardTeleopNode(TeleopBase):
    def __init__(self, keys: queue.Queue) -> None:
        super().__init__('keyboard_teleop')
        self.declare_parameter('key_step', 0.1, describe('s of jogging per key press', 0.001, 10.0,
                                                         read_only=True))
        self.declare_parameter('collector', 'teleop_collector',
                               describe('recorder node whose start/stop/discard services the keys call',
                                        read_only=True))
        self.key_step = float(self.get_parameter('key_step').value)
        collector = str(self.get_parameter('collector').value)
        self.keys = keys
        self.start_srv = self.create_client(Trigger, f'/{collector}/start')
        self.stop_srv = self.create_client(SetBool, f'/{collector}/stop')
        self.discard_srv = self.create_client(Trigger, f'/{collector}/discard')
        self.create_timer(1.0 / self.rate, self._tick)

    def _recorder(self, client, request, what: str) -> None:
        """Call a recorder service without blocking; the answer is logged when it comes."""
        if not client.service_is_ready():
            self.get_logger().warning(f'{what}: the recorder ({client.srv_name}) is not running')
            return
        future = client.call_async(request)
        future.add_done_callback(lambda f: self.get_logger().info(
            f'{what}: {"ok" if f.result().success else "refused"}: {f.result().message}'))

    def handle_key(self, key: str) -> None:
        n_arm = len(self.jog.arm)
        if key == 'm':
            self.toggle_mode()
        elif key in '+=':
            self.scale_speed(1.25)
        elif key == '-':
            self.scale_speed(0.8)
        elif key == ' ':
            self.jog.hold()
        elif key == '1':
            self._recorder(self.start_srv, Trigger.Request(), 'start recording')
        elif key == '2':
            self._recorder(self.stop_srv, SetBool.Request(data=True), 'stop (success)')
        elif key == '3':
            self._recorder(self.stop_srv, SetBool.Request(data=False), 'stop (failure)')
        elif key == '0':
            self._recorder(self.discard_srv, Trigger.Request(), 'discard')
        else:
            inp = key_input(key, self.jog.mode if self.jog.mode == CARTESIAN else 'joint', n_arm)
            if inp is not None:
                self.jog.step(inp, self.key_step)

    def _tick(self) -> None:
        while True:
            try:
                key = self.keys.get_nowait()
            except queue.Empty:
                break
            self.handle_key(key)
        # no deadman on a keyboard: between presses the target simply stays where it is
        self.publish_target(None if self.jog.target is None else self.jog.target.copy())


def read_keys(keys: queue.Queue, stream) -> None:
    """Forward characters from ``stream`` (stdin) to the node; runs in its own thread."""
    while True:
        char = stream.read(1)
        if not char:
            return
        keys.put(char)


def main(args=None) -> None:
    # the node takes SIGINT/SIGTERM itself (vla_common.shutdown), so the context is still alive
    # for the final hold command
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    keys: queue.Queue = queue.Queue()
    saved = None
    fd = sys.stdin.fileno()
    if os.isatty(fd):
        import termios
        import tty
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)  # keys arrive one at a time, without Enter
    node = None
    try:
        node = KeyboardTeleopNode(keys)
        if saved is None:
            node.get_logger().warning('stdin is not a terminal: reading keys from it anyway')
        print(HELP, file=sys.stderr)
        threading.Thread(target=read_keys, args=(keys, sys.stdin), daemon=True).start()
        spin_until_signalled(node)  # SIGINT/SIGTERM end the loop; the final hold follows
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if saved is not None:
            import termios
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if node is not None:
            send_final_hold(node)
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
