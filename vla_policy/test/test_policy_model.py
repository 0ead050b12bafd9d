import numpy as np
import pytest
import torch

from vla_policy import IncompatibleCheckpoint, VLAPolicy, preset
from vla_policy.encoders import WeightsNotFound
from vla_policy.testing import make_tiny_checkpoint

JOINTS = ['j1', 'j2', 'j3', 'j4', 'j5', 'j6', 'gripper']


def _batch(cfg, B=3):
    T, K, S = cfg.n_obs_steps, cfg.chunk_size, cfg.image_size
    g = torch.Generator().manual_seed(0)
    return dict(images=torch.randint(0, 255, (B, T, S, S, 3), dtype=torch.uint8, generator=g),
                joint_positions=torch.randn(B, T, cfg.state_dim, generator=g),
                instruction=['pick up the red cube', 'put the green cube on the red cube', 'pick up the red cube'][:B],
                actions=torch.randn(B, K, cfg.action_dim, generator=g),
                action_is_pad=torch.zeros(B, K, dtype=torch.bool))


def _obs(rng, size=(48, 40), n=7, text='pick up the red cube'):
    return {'image': rng.integers(0, 255, (*size, 3), dtype=np.uint8),
            'joint_positions': rng.normal(size=n).astype(np.float32), 'instruction': text}


@pytest.mark.parametrize('name', ['tiny', 'tiny-clip-bert'])
def test_forward_backward_and_chunk_shapes(name):
    cfg = preset(name, joint_names=JOINTS, state_dim=7, action_names=[f'a{i}' for i in range(4)], action_dim=4)
    policy = VLAPolicy(cfg)
    loss, info = policy(_batch(cfg))
    loss.backward()
    assert torch.isfinite(loss) and set(info) == {'l1', 'mse'}
    assert policy.vision_proj.weight.grad.abs().sum() > 0
    assert policy.state_proj.weight.grad.abs().sum() > 0  # the joint state is used
    chunk = policy.predict_action_chunk(_batch(cfg))
    assert chunk.shape == (3, cfg.chunk_size, 4)


def test_padded_actions_do_not_count_in_the_loss():
    cfg = preset('tiny', joint_names=JOINTS, state_dim=7, action_dim=7)
    policy = VLAPolicy(cfg).eval()
    batch = _batch(cfg)
    batch['action_is_pad'][:, 2:] = True
    loss1, _ = policy(batch)
    batch['actions'][:, 2:] += 100.0
    loss2, _ = policy(batch)
    assert torch.allclose(loss1, loss2)


def test_frozen_language_encoder_caches_one_embedding_per_instruction():
    cfg = preset('tiny', joint_names=JOINTS, state_dim=7, action_dim=7)
    policy = VLAPolicy(cfg)
    policy(_batch(cfg))
    assert sorted(policy.language.cache) == ['pick up the red cube', 'put the green cube on the red cube']
    assert not any(p.requires_grad for p in policy.language.parameters())


def test_checkpoint_round_trip_gives_identical_actions(tmp_path):
    path = make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS, image_size=32, seed=1,
                                action_mean=[0.1] * 7)
    a = VLAPolicy.from_pretrained(path)
    b = VLAPolicy.from_pretrained(path)
    rng = np.random.default_rng(0)
    observations = [_obs(rng) for _ in range(6)]
    out_a = [a.select_action(o) for o in observations]
    out_b = [b.select_action(o) for o in observations]
    assert all(x.dtype == np.float32 and x.shape == (7,) for x in out_a)
    assert all(np.array_equal(x, y) for x, y in zip(out_a, out_b))
    # saving the loaded policy again gives the same weights
    b.save_pretrained(tmp_path / 'again')
    c = VLAPolicy.from_pretrained(tmp_path / 'again')
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, c.state_dict()[name]), name
    assert VLAPolicy.from_pretrained(tmp_path / 'again').config == a.config


def test_select_action_serves_a_queue_and_new_instructions_reset(tmp_path):
    policy = VLAPolicy.from_pretrained(make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS))
    n = policy.config.n_action_steps
    rng = np.random.default_rng(1)
    for _ in range(n):
        policy.select_action(_obs(rng))
    assert len(policy._queue) == 0
    policy.select_action(_obs(rng))
    assert len(policy._queue) == n - 1
    policy.select_action(_obs(rng, text='pick up the blue cube'))  # new command: fresh chunk
    assert len(policy._queue) == n - 1 and len(policy._history) == policy.config.n_obs_steps


def test_predict_chunk_is_the_chunk_select_action_serves(tmp_path):
    """Asynchronous inference takes whole chunks: the same actions the queue would serve."""
    ck = make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS)
    a, b = VLAPolicy.from_pretrained(ck), VLAPolicy.from_pretrained(ck)
    obs = _obs(np.random.default_rng(2))
    chunk = a.predict_chunk(obs)
    assert chunk.shape == (a.config.chunk_size, len(JOINTS)) and a.predicted_chunk
    served = [b.select_action(obs) for _ in range(b.config.n_action_steps)]
    np.testing.assert_allclose(np.stack(served), chunk[: b.config.n_action_steps], atol=1e-6)
    # the queue's plan ahead (the controller's plan_points with synchronous inference)
    c = VLAPolicy.from_pretrained(ck)
    c.select_action(obs)
    n = c.config.n_action_steps
    np.testing.assert_allclose(c.upcoming(5), chunk[1:min(6, n)], atol=1e-6)
    assert c.upcoming(0).shape == (0, len(JOINTS))


def test_temporal_ensembling_blends_overlapping_chunks(tmp_path):
    policy = VLAPolicy.from_pretrained(make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS,
                                                            temporal_ensemble=True))
    rng = np.random.default_rng(2)
    K = policy.config.chunk_size
    first = policy.select_action(_obs(rng))
    assert len(policy._ensemble) == 1
    assert np.allclose(first, policy._ensemble[0][0][0], atol=1e-6)  # one chunk: its first action
    for step in range(2, K + 3):
        action = policy.select_action(_obs(rng))
        assert np.all(np.isfinite(action))
        assert len(policy._ensemble) == min(step, K - 1)  # chunks that still cover the next tick


def test_bad_observations_and_mismatched_robots_are_clear_errors(tmp_path):
    policy = VLAPolicy.from_pretrained(make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS))
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match='joint_positions has 3 values'):
        policy.select_action(_obs(rng, n=3))
    with pytest.raises(ValueError, match='uint8'):
        policy.select_action({**_obs(rng), 'image': np.zeros((8, 8, 3), np.float32)})
    with pytest.raises(ValueError, match='missing'):
        policy.select_action({'image': np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(IncompatibleCheckpoint, match='joint names'):
        policy.check_compatible(joint_names=['a', 'b', 'c', 'd', 'e', 'f', 'g'])
    with pytest.raises(IncompatibleCheckpoint, match='action dimension 6'):
        policy.check_compatible(action_dim=6)
    policy.check_compatible(joint_names=JOINTS, action_dim=7)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    from vla_policy import CheckpointError
    with pytest.raises(CheckpointError, match='not a VLAPolicy checkpoint'):
        VLAPolicy.from_pretrained(tmp_path)


def test_clip_bert_without_local_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv('VLA_CLIP_PATH', str(tmp_path / 'empty_dir'))
    cfg = preset('clip-bert', joint_names=JOINTS, state_dim=7, action_dim=7)
    with pytest.raises(WeightsNotFound, match='VLA_CLIP_PATH') as err:
        VLAPolicy(cfg)
    assert 'empty_dir' in str(err.value) and 'huggingface-cli download' in str(err.value)
    cfg = preset('clip-bert', joint_names=JOINTS, state_dim=7, action_dim=7,
                 clip_path=str(tmp_path / 'no_clip_here'))
    with pytest.raises(WeightsNotFound, match='no_clip_here'):
        VLAPolicy(cfg)


def test_instruction_embeddings_are_centred_and_condition_the_vision_encoder():
    cfg = preset('tiny', joint_names=JOINTS, state_dim=7, action_dim=7)
    policy = VLAPolicy(cfg).eval()
    texts = ['pick up the red cube', 'pick up the blue cube', 'put the green cube on the red cube']
    policy.set_normalization({'state': {'mean': np.zeros(7), 'std': np.ones(7)},
                              'action': {'mean': np.zeros(7), 'std': np.ones(7)}}, instructions=texts)
    z = policy.language_norm.normalize(policy.language(texts))
    assert torch.allclose(z.mean(0), torch.zeros(z.shape[1]), atol=1e-5)
    assert z.pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=1e-4)
    # FiLM starts as the identity; once trained, the same frame gives instruction-specific features
    frames = torch.randint(0, 255, (1, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8)
    lang = policy.embed_language(texts[:2])
    same = [policy.vision(frames, lang[i:i + 1]) for i in range(2)]
    assert torch.allclose(same[0], same[1])
    with torch.no_grad():
        for film in policy.vision.net.films:
            film.weight.normal_(0, 0.1)
    differ = [policy.vision(frames, lang[i:i + 1]) for i in range(2)]
    assert not torch.allclose(differ[0], differ[1])


def test_clip_bert_loads_local_weight_directories(tmp_path):
    """The clip-bert path with pretrained weights: tiny CLIP and BERT saved to local directories."""
    from transformers import AutoTokenizer, BertConfig, BertModel, CLIPVisionConfig, CLIPVisionModel

    from vla_policy.config import TINY_BERT, TINY_CLIP
    from vla_policy.encoders import minilm_path
    clip_dir, bert_dir = tmp_path / 'clip', tmp_path / 'bert'
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP)).save_pretrained(clip_dir)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    bert = BertModel(BertConfig(**TINY_BERT, vocab_size=len(tokenizer)))
    bert.save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    cfg = preset('clip-bert', joint_names=JOINTS, state_dim=7, action_dim=7, clip_path=str(clip_dir),
                 language_path=str(bert_dir), image_size=32, d_model=32, n_heads=2, n_layers=1, ff_dim=64)
    policy = VLAPolicy(cfg)
    ref = CLIPVisionModel.from_pretrained(clip_dir)
    mine = policy.vision.net.state_dict()
    assert ref.state_dict().keys() == mine.keys()
    assert all(torch.equal(v, mine[k]) for k, v in ref.state_dict().items())
    assert policy.config.vision_model_config['hidden_size'] == 32  # written back for the checkpoint
    policy.set_normalization({'state': {'mean': np.zeros(7), 'std': np.ones(7)},
                              'action': {'mean': np.zeros(7), 'std': np.ones(7)}})
    path = policy.save_pretrained(tmp_path / 'ck')
    loaded = VLAPolicy.from_pretrained(path)  # needs nothing but the checkpoint
    obs = _obs(np.random.default_rng(5))
    policy.eval()
    assert np.array_equal(policy.select_action(obs), loaded.select_action(obs))


def test_cached_history_at_inference_matches_the_training_batch(tmp_path):
    """select_action encodes one frame per call and caches the rest; the chunk it acts on equals
    the batch path on the same (repeat-padded) history, with a second camera too."""
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS, image_size=16, n_obs_steps=3,
                                extra_cameras=['wrist'], n_action_steps=1)
    policy = VLAPolicy.from_pretrained(ckpt)
    rng = np.random.default_rng(3)
    frames = [{**_obs(rng, size=(16, 16)), 'image_wrist': rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)}
              for _ in range(2)]
    for obs in frames:
        action = policy.select_action(obs)
    history = [frames[0], frames[0], frames[1]]  # the first frame repeat-pads the history
    batch = {'images': torch.from_numpy(np.stack([f['image'] for f in history]))[None],
             'images_wrist': torch.from_numpy(np.stack([f['image_wrist'] for f in history]))[None],
             'joint_positions': torch.from_numpy(np.stack([f['joint_positions'] for f in history]))[None],
             'instruction': [frames[0]['instruction']]}
    chunk = policy.predict_action_chunk(batch)[0].numpy()
    np.testing.assert_allclose(action, chunk[0], atol=1e-5)


def _two_camera_frames(rng, n, size=16):
    return [{**_obs(rng, size=(size, size)), 'image_wrist': rng.integers(0, 255, (size, size, 3), dtype=np.uint8)}
            for _ in range(n)]


@pytest.mark.parametrize('n_obs_steps,n_action_steps', [(3, 4), (2, 1), (1, 4), (4, 2)])
def test_lazy_encoding_acts_exactly_as_encoding_every_frame(tmp_path, n_obs_steps, n_action_steps):
    """Frames are encoded only when a coming prediction looks at them; every action equals
    the one of a policy that encodes every frame, and every chunk equals the batch path on
    the last n_obs_steps frames (repeat-padded at the start)."""
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS, image_size=16, n_obs_steps=n_obs_steps,
                                extra_cameras=['wrist'], n_action_steps=n_action_steps)
    lazy, eager = VLAPolicy.from_pretrained(ckpt), VLAPolicy.from_pretrained(ckpt)
    eager.encode_every_frame = True
    encoded = []
    original = lazy.encode_frames
    lazy.encode_frames = lambda *a, **k: encoded.append(1) or original(*a, **k)
    frames = _two_camera_frames(np.random.default_rng(4), 3 * n_action_steps + 2)
    for t, obs in enumerate(frames):
        a, b = lazy.select_action(obs), eager.select_action(obs)
        assert np.array_equal(a, b), t
        assert lazy.predicted_chunk == (t % n_action_steps == 0)
        if lazy.predicted_chunk:
            history = [frames[max(0, i)] for i in range(t - n_obs_steps + 1, t + 1)]
            batch = {'images': torch.from_numpy(np.stack([f['image'] for f in history]))[None],
                     'images_wrist': torch.from_numpy(np.stack([f['image_wrist'] for f in history]))[None],
                     'joint_positions': torch.from_numpy(np.stack([f['joint_positions'] for f in history]))[None],
                     'instruction': [obs['instruction']]}
            np.testing.assert_allclose(a, eager.predict_action_chunk(batch)[0, 0].numpy(), atol=1e-5)
    # a frame is encoded only within n_obs_steps calls of a prediction
    needed = sum(1 for t in range(len(frames)) if (-t) % n_action_steps < n_obs_steps)
    assert len(encoded) == needed <= len(frames)


def test_queue_mode_encodes_once_per_chunk_and_reset_keeps_the_instruction_cache(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS, image_size=16, extra_cameras=['wrist'])
    policy = VLAPolicy.from_pretrained(ckpt)
    n = policy.config.n_action_steps
    calls = {'encode': 0, 'language': 0}
    encode, embed = policy.encode_frames, policy.embed_language
    policy.encode_frames = lambda *a, **k: calls.__setitem__('encode', calls['encode'] + 1) or encode(*a, **k)
    policy.embed_language = lambda *a, **k: calls.__setitem__('language', calls['language'] + 1) or embed(*a, **k)
    frames = _two_camera_frames(np.random.default_rng(5), 2 * n)
    for obs in frames:
        policy.select_action(obs)
    assert calls == {'encode': 2, 'language': 1}
    policy.select_action(frames[0])  # a third chunk
    assert len(policy._queue) == n - 1
    # a hold resets the policy: the queue planned before it is dropped, the next call predicts
    # from the new frame, and the instruction's embedding is not computed again
    policy.reset()
    assert len(policy._queue) == 0 and len(policy._history) == 0
    fresh = VLAPolicy.from_pretrained(ckpt)
    assert np.array_equal(policy.select_action(frames[1]), fresh.select_action(frames[1]))
    assert policy.predicted_chunk and calls == {'encode': 4, 'language': 1}
    # new statistics (weights) invalidate the cached embedding
    policy.set_normalization({'state': {'mean': np.zeros(7), 'std': np.ones(7)},
                              'action': {'mean': np.zeros(7), 'std': np.ones(7)}},
                             instructions=['pick up the red cube', 'stack the cubes'])
    policy.reset()
    policy.select_action(frames[1])
    assert calls['language'] == 2


def test_read_only_frames_of_the_model_size_are_accepted(tmp_path):
    """The controller passes zero-copy (read-only) views of ROS image messages."""
    policy = VLAPolicy.from_pretrained(make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS, image_size=16))
    obs = _obs(np.random.default_rng(6), size=(16, 16))
    view = np.frombuffer(obs['image'].tobytes(), np.uint8).reshape(16, 16, 3)
    assert not view.flags.writeable
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        action = policy.select_action({**obs, 'image': view})
    assert np.array_equal(action, VLAPolicy.from_pretrained(tmp_path / 'ck').select_action(obs))


@pytest.mark.parametrize('n_obs_steps', [1, 3])
def test_traced_inference_acts_as_eager_and_is_dropped_when_the_weights_can_change(tmp_path, n_obs_steps):
    """trace_for_inference() runs predictions through frozen TorchScript graphs: every action and
    chunk equals eager PyTorch's (new instructions included); train(), load_state_dict and device
    moves drop the graphs, whose weights are constants."""
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS, image_size=16, n_obs_steps=n_obs_steps,
                                extra_cameras=['wrist'], n_action_steps=2)
    traced, eager = VLAPolicy.from_pretrained(ckpt), VLAPolicy.from_pretrained(ckpt)
    assert traced.trace_for_inference() == '' and traced.traced and not eager.traced
    frames = _two_camera_frames(np.random.default_rng(5), 9)
    for t, obs in enumerate(frames):
        if t >= 5:
            obs = {**obs, 'instruction': 'put the green cube on the red cube'}
        np.testing.assert_allclose(traced.select_action(obs), eager.select_action(obs), atol=1e-5)
        np.testing.assert_allclose(traced.predict_chunk(obs), eager.predict_chunk(obs), atol=1e-5)
    traced.train()
    assert not traced.traced
    assert traced.trace_for_inference() == ''
    traced.load_state_dict(eager.state_dict())
    assert not traced.traced
    assert traced.trace_for_inference() == '' and traced.to('cpu', torch.float64) is traced and not traced.traced


def test_traced_inference_is_for_the_cnn_encoder():
    cfg = preset('tiny-clip-bert', joint_names=JOINTS, state_dim=7, action_names=JOINTS, action_dim=7)
    policy = VLAPolicy(cfg)
    why = policy.trace_for_inference()
    assert 'cnn' in why and not policy.traced


@pytest.mark.parametrize('readout', [0, 3])
def test_spatial_tokens_give_the_transformer_one_token_per_map_cell(tmp_path, readout):
    """spatial_tokens: each camera's last conv map enters the transformer cell by cell (a frame is
    1 + cells tokens), or through `readout` cross-attention tokens (1 + readout); it trains (the
    cell projection gets gradients), round-trips through a checkpoint and traces to the same
    actions; only the cnn encoder has it."""
    cfg = preset('tiny', joint_names=JOINTS, state_dim=7, action_names=JOINTS, action_dim=7,
                 spatial_tokens=True, spatial_readout=readout, n_obs_steps=2, extra_cameras=['wrist'])
    policy = VLAPolicy(cfg)
    side = 8  # tiny: 32 px, strides 2, 2
    assert policy.spatial_cells == 2 * side * side
    assert policy.frame_tokens == 1 + (readout or 2 * side * side)
    batch = _batch(cfg)
    batch['images_wrist'] = batch['images'].flip(2)
    language = policy.embed_language(batch['instruction'])
    tokens = policy.encode_frames(batch['images'], batch['joint_positions'], language,
                                  {'wrist': batch['images_wrist']})
    assert tokens.shape == (3, 2, policy.frame_tokens, cfg.d_model)
    loss, _ = policy(batch)
    loss.backward()
    assert policy.spatial_proj[0].weight.grad.abs().sum() > 0 and policy.spatial_proj[1].weight.grad.abs().sum() > 0
    assert policy.spatial_pos.grad.abs().sum() > 0
    if readout:
        assert policy.readout_queries.grad.abs().sum() > 0
    ckpt = make_tiny_checkpoint(tmp_path / 'ck', joint_names=JOINTS, image_size=16, n_obs_steps=2,
                                extra_cameras=['wrist'], n_action_steps=2, spatial_tokens=True,
                                spatial_readout=readout)
    traced, eager = VLAPolicy.from_pretrained(ckpt), VLAPolicy.from_pretrained(ckpt)
    assert eager.config.spatial_tokens and eager.spatial_cells == 2 * 4 * 4
    assert traced.trace_for_inference() == '' and traced.traced
    for obs in _two_camera_frames(np.random.default_rng(3), 5):
        np.testing.assert_allclose(traced.select_action(obs), eager.select_action(obs), atol=1e-5)
        np.testing.assert_allclose(traced.predict_chunk(obs), eager.predict_chunk(obs), atol=1e-5)
    with pytest.raises(ValueError, match='spatial_tokens'):
        preset('tiny-clip-bert', spatial_tokens=True)
    with pytest.raises(ValueError, match='spatial_readout'):
        preset('tiny', spatial_readout=4)
