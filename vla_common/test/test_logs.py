"""emit_log: a core's (level, text) lines through a node logger."""
from vla_common.logs import emit_log


class _Logger:
    def __init__(self):
        self.lines = []

    def error(self, text):
        self.lines.append(('error', text))

    def warning(self, text):
        self.lines.append(('warning', text))

    def info(self, text):
        self.lines.append(('info', text))


def test_levels_map_to_the_logger_calls_in_order():
    logger = _Logger()
    emit_log(logger, [('error', 'a'), ('warn', 'b'), ('warning', 'c'), ('info', 'd'), ('debug', 'e')])
    assert logger.lines == [('error', 'a'), ('warning', 'b'), ('warning', 'c'), ('info', 'd'),
                            ('info', 'e')]
