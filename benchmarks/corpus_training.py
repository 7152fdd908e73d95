"""The corpus's Flax example training programs through `nnx-migrate rewrite`: what converts,
what is left as TODO, and, for the programs with a driver here, whether the converted
program trains (its loss falls over a few steps on small synthetic data, next to the
Linen original run the same way).

    python benchmarks/corpus_training.py [CORPUS_DIR] [--style flat-state|nnx-jit] [--pmap keep|jit]

CORPUS_DIR is what ../shared/corpus/get-dev-corpus.sh downloads (default: .corpus, else
/work/corpus). Each example folder is converted as one run (the model file and the
training loop together) into a temporary copy; nothing of the corpus is kept. Data
loading, TensorFlow, ml_collections and file output are replaced by stubs and synthetic
batches HERE (never in the tool): the program's own `train_and_evaluate` then runs.
A TODO a person must finish is filled in by the driver only where the table says so.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
import traceback
import types
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnx_migrate.files import iter_python_files  # noqa: E402
from nnx_migrate.rewrite.runner import rewrite_files  # noqa: E402

PROGRAMS = ("mnist", "vae", "sst2", "seq2seq", "ppo", "imagenet", "wmt", "lm1b")
# Third-party modules the examples import that this environment does not have.
STUBBED = ("flax.metrics.tensorboard", "tensorflow", "tensorflow_datasets", "ml_collections", "clu", "tensorflow_text", "sentencepiece", "gym", "gymnasium", "ale_py", "PIL", "cv2", "atari_py")
# Per program: the module whose code the driver runs, and modules stubbed for it only
# (absl flags are global: a second import of the same program would define them twice).
ENTRY = {"ppo": ("ppo_main", ("absl", "gymnasium.spaces", "gymnasium.spaces.box")), "seq2seq": ("train", ("absl",))}


def find_corpus(arg: str | None) -> Path:
    for candidate in [arg, ROOT / ".corpus", "/work/corpus"]:
        if candidate and (Path(candidate) / "flax-examples").is_dir():
            return Path(candidate)
    raise SystemExit("no corpus: run ../shared/corpus/get-dev-corpus.sh first")


def convert(src: Path, dst: Path, style: str, pmap: str = "keep"):
    """Copies the example folder to `dst` with every converted file replaced."""
    shutil.copytree(src, dst)
    files = list(iter_python_files([str(src)]))
    results = rewrite_files(files, train_style=style, pmap=pmap)
    for result in results:
        if result.status == "changed":
            (dst / Path(result.path).relative_to(src)).write_text(result.new_text)
    return results


class Config(dict):
    __getattr__ = dict.__getitem__


@contextlib.contextmanager
def program(folder: Path, module: str = "train", extra_stubs=()):
    """Imports `folder/<module>.py` with the folder first on sys.path and the example's
    sibling modules fresh (the Linen and the converted copies share their names)."""
    import flax.training.checkpoints  # noqa: F401  (flax.io asks importlib about tensorflow: before the stubs)

    siblings = {p.stem for p in folder.glob("*.py")}
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] in siblings}
    saved.update({name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] in extra_stubs})
    stubs = {name: mock.MagicMock(name=name) for name in (*STUBBED, *extra_stubs) if name not in sys.modules}
    sys.modules.update(stubs)
    sys.path.insert(0, str(folder))
    try:
        yield __import__(module)
    finally:
        sys.path.remove(str(folder))
        for name in list(sys.modules):
            if name.split(".")[0] in siblings or name in stubs:
                del sys.modules[name]
        sys.modules.update(saved)


# ---- drivers: run the program's own loop on synthetic data -------------------------------

def _images(key, n, binary=False):
    import jax
    import jax.numpy as jnp

    k1, k2, k3 = jax.random.split(key, 3)
    prototypes = jax.random.uniform(k1, (4, 28, 28, 1))
    labels = jax.random.randint(k2, (n,), 0, 4)
    images = prototypes[labels] * 0.8 + 0.2 * jax.random.uniform(k3, (n, 28, 28, 1))
    if binary:
        images = (images > 0.5).astype(jnp.float32)
    return images, labels


def drive_mnist(train, epochs=4):
    import jax

    images, labels = _images(jax.random.key(0), 128)
    data = {"image": images, "label": labels}
    train.get_datasets = lambda: (data, data)
    logged = []
    train.logging = types.SimpleNamespace(info=lambda msg, *args: logged.append(msg % args if args else msg))
    train.tensorboard = mock.MagicMock()
    config = Config(learning_rate=0.01, momentum=0.9, batch_size=16, num_epochs=epochs)
    train.train_and_evaluate(config, "/tmp/unused")
    return [float(re.search(r"train_loss: ([0-9.]+)", line).group(1)) for line in logged if "train_loss" in line]


def drive_vae(train, epochs=4):
    import jax

    images, _ = _images(jax.random.key(0), 64, binary=True)
    flat = images.reshape(64, 784)
    batches = [flat[i:i + 16] for i in range(0, 64, 16)]

    def train_set(batch_size, builder):
        while True:
            yield from batches

    train.input_pipeline = types.SimpleNamespace(build_train_set=train_set, build_test_set=lambda builder: flat)
    builder = types.SimpleNamespace(download_and_prepare=lambda: None, info=types.SimpleNamespace(splits={"train": types.SimpleNamespace(num_examples=64)}))
    train.tfds = types.SimpleNamespace(builder=lambda name: builder)
    train.vae_utils = types.SimpleNamespace(save_image=lambda *a, **k: None)
    config = Config(learning_rate=1e-3, latents=8, batch_size=16, num_epochs=epochs)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train.train_and_evaluate(config, "/tmp/unused")
    return [float(x) for x in re.findall(r"loss: ([0-9.]+)", out.getvalue())]


class _FakeAtari:
    """One simulator's pipe (agent.RemoteSimulator's `conn`), on synthetic frames: the
    rewarded action is the one the frame's brightness picks, so the policy and the value
    function have something to learn."""

    def __init__(self, rng, num_actions):
        self.rng, self.num_actions = rng, num_actions
        self.frame, self.pending = None, None

    def recv(self):
        if self.pending is not None:
            out, self.pending = self.pending, None
            return out
        self.frame = self.rng.integers(0, 256, (1, 84, 84, 4)).astype("float32")
        return self.frame

    def send(self, action):
        best = int(self.frame.mean() / 256 * self.num_actions)
        self.steps = getattr(self, "steps", 0) + 1
        self.pending = (self.frame, action, float(action == best), self.steps % 4 == 0)  # 4-step episodes


def drive_ppo(main, loops=6):
    """ppo_main.main builds the model and calls ppo_lib.train; the Atari simulators,
    the score test, checkpoints and tensorboard are replaced (I/O and environments), and
    each train_step's summed minibatch loss is recorded."""
    import numpy as np

    lib = main.ppo_lib
    rng = np.random.default_rng(0)
    np.random.seed(0)
    num_actions = 3
    main.env_utils = types.SimpleNamespace(get_num_actions=lambda game: num_actions)
    lib.agent.RemoteSimulator = lambda game: types.SimpleNamespace(conn=_FakeAtari(rng, num_actions))

    def policy_test(n, apply_fn, params, game):  # one forward pass through the program's own policy_action
        frame = np.zeros((1, 84, 84, 4), np.float32)
        log_probs, _ = lib.agent.policy_action(apply_fn, params, frame)
        return float(np.exp(np.asarray(log_probs)).sum())

    lib.test_episodes = types.SimpleNamespace(policy_test=policy_test)
    lib.checkpoints = types.SimpleNamespace(restore_checkpoint=lambda d, state: state, save_checkpoint=lambda *a, **k: None)
    lib.tensorboard = mock.MagicMock()
    losses = []
    step = lib.train_step

    def recording_step(*args, **kwargs):
        state, loss = step(*args, **kwargs)
        losses.append(float(loss))
        return state, loss

    lib.train_step = recording_step
    config = Config(game="Pong", total_frames=loops * 2 * 16, learning_rate=1e-3, batch_size=8, num_agents=2, actor_steps=16,
                    num_epochs=2, gamma=0.99, lambda_=0.95, clip_param=0.1, vf_coeff=0.5, entropy_coeff=0.01, decaying_lr_and_clip_param=False)
    main.FLAGS = types.SimpleNamespace(config=config, workdir="/tmp/unused")
    main.tf = mock.MagicMock()
    with contextlib.redirect_stdout(io.StringIO()):
        main.main(None)
    return losses


def drive_sst2(train, epochs=4):
    """Synthetic token batches (the label is whether the first token is a high id) in
    place of the TFDS SST-2 pipeline; the train loss per epoch comes from the program's log."""
    import numpy as np

    rng = np.random.default_rng(0)
    batches = []
    for _ in range(6):
        ids = rng.integers(2, 20, (8, 6)).astype(np.int32)
        batches.append({"token_ids": ids, "length": np.full((8,), 6, np.int32), "label": (ids[:, 0] >= 11).astype(np.int32)})

    class TextDataset:
        def __init__(self, tfds_name, split):
            self.vocab = [str(i) for i in range(20)]

        def get_bucketed_batches(self, *args, **kwargs):
            return batches

        def get_batches(self, batch_size):
            return batches[:2]

    train.input_pipeline = types.SimpleNamespace(TextDataset=TextDataset)
    train.batch_to_numpy = lambda batch: batch  # the program's own unwraps tf tensors
    logged = []
    train.logging = types.SimpleNamespace(info=lambda msg, *args: logged.append(msg % args if args else msg))
    train.tensorboard = mock.MagicMock()
    config = Config(embedding_size=16, hidden_size=16, vocab_size=None, output_size=1, dropout_rate=0.1, word_dropout_rate=0.1,
                    unk_idx=1, learning_rate=0.1, momentum=0.9, weight_decay=3e-6, batch_size=8, bucket_size=8,
                    max_input_length=12, num_epochs=epochs, seed=0)
    train.train_and_evaluate(config, "/tmp/unused")
    return [float(re.search(r"loss ([0-9.]+)", line).group(1)) for line in logged if line.startswith("train epoch")]


def drive_seq2seq(train, steps=30):
    """The program's own addition task (its CharacterTable makes the batches); absl flags
    replaced by a namespace; each train_step's loss recorded."""
    train.FLAGS = types.SimpleNamespace(workdir="/tmp/unused", learning_rate=0.01, batch_size=16, hidden_size=32,
                                        num_train_steps=steps, decode_frequency=10, max_len_query_digit=2)
    train.metric_writers = mock.MagicMock()
    train.logging = mock.MagicMock()
    losses = []
    step = train.train_step

    def recording_step(*args, **kwargs):
        state, metrics = step(*args, **kwargs)
        losses.append(float(metrics["loss"]))
        return state, metrics

    train.train_step = recording_step
    import random

    random.seed(0)  # CharacterTable draws its problems from `random`
    train.train_and_evaluate("/tmp/unused")
    return [sum(losses[i:i + 5]) / 5 for i in range(0, len(losses), 5)]  # mean of each 5 steps


class _TfTensor:
    """What a tf.data element's leaves look like to the program (`x._numpy()`)."""

    def __init__(self, array):
        self.array = array

    def _numpy(self):
        return self.array


class _ScalarWriter:
    """clu's metric writer: records `write_scalars`, ignores the rest."""

    def __init__(self):
        self.scalars = []

    def write_scalars(self, step, scalars):
        self.scalars.append((step, {k: float(v) for k, v in scalars.items()}))

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def drive_wmt(train, steps=12):
    """A copy task on synthetic token sequences (vocab 32, length 8, batch 4) in place of
    the WMT/TFDS pipeline and the SentencePiece tokenizer; a tiny Transformer (1 layer, 2
    heads, emb 16), float32 (no dynamic_scale), no checkpoints, the program's own
    `train_and_evaluate` with its `jax.pmap`ped `train_step` and `eval_step` on 1 CPU
    device. Decoding and BLEU (`translate_and_calculate_bleu`: tokenizer, beam search over
    a Linen cache) are not run on either side. Dropout rates are 0: see HAND_FIXES and docs/corpus.md
    (the one NNX model is built from `eval_config`). The train loss per step is read from
    the program's own metric writer."""
    import numpy as np

    rng = np.random.default_rng(0)

    def batches(n, tensors=False):
        out = []
        for _ in range(n):
            ids = rng.integers(3, 32, (4, 8)).astype(np.int32)
            batch = {"inputs": ids, "targets": ids.copy()}
            out.append({k: _TfTensor(v) for k, v in batch.items()} if tensors else batch)
        return out

    train_batches, eval_batches = batches(steps), batches(1, tensors=True)
    encoder = types.SimpleNamespace(vocab_size=lambda: 32)
    train.input_pipeline = types.SimpleNamespace(get_wmt_datasets=lambda **kwargs: (train_batches, eval_batches, mock.MagicMock(), encoder))
    train.translate_and_calculate_bleu = lambda **kwargs: ("", 0.0)
    writer = _ScalarWriter()
    train.metric_writers = types.SimpleNamespace(create_default_writer=lambda *a, **k: writer, ensure_flushes=lambda w: contextlib.nullcontext())
    config = Config(vocab_path="/tmp/unused", reverse_translation=False, per_device_batch_size=4, beam_size=1, num_train_steps=steps,
                    num_eval_steps=1, num_predict_steps=1, learning_rate=0.02, warmup_steps=2, label_smoothing=0.0, weight_decay=0.0,
                    max_target_length=8, max_eval_target_length=8, max_predict_length=8, share_embeddings=True,
                    logits_via_embedding=True, num_layers=1, qkv_dim=16, emb_dim=16, mlp_dim=32, num_heads=2, dropout_rate=0.0,
                    attention_dropout_rate=0.0, save_checkpoints=False, restore_checkpoints=False, checkpoint_every_steps=1000,
                    eval_every_steps=1, use_mixed_precision=False, seed=0)
    train.train_and_evaluate(config, "/tmp/unused")
    return [scalars["train_loss"] for _, scalars in writer.scalars if "train_loss" in scalars]


def drive_imagenet(train, steps=12):
    """Synthetic 32x32 images of 4 classes (a prototype per class plus noise, batch 8) in
    place of the TFDS ImageNet pipeline; a tiny ResNet (`_ResNet1`'s one ResNetBlock stage,
    8 filters, registered here as `models._ResNetDriver`), float32 (half_precision off, so
    `dynamic_scale` is None), checkpoints stubbed (`restore_checkpoint`/`save_checkpoint`),
    the program's own `train_and_evaluate` with its `jax.pmap`ped `train_step` and
    `eval_step` on 1 CPU device. The train loss per step is read from the program's own
    metric writer (`log_every_steps=1`)."""
    import functools

    import jax
    import numpy as np

    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    prototypes = np.asarray(jax.random.uniform(k1, (4, 32, 32, 3)))
    labels = np.asarray(jax.random.randint(k2, (steps, 8), 0, 4))
    noise = np.asarray(jax.random.uniform(k3, (steps, 8, 32, 32, 3)))
    host = [{"image": _TfTensor((prototypes[labels[i]] * 0.7 + 0.3 * noise[i]).astype(np.float32)), "label": _TfTensor(labels[i])}
            for i in range(steps)]
    batches = [train.prepare_tf_data(batch) for batch in host]  # the program's own: split by device under pmap

    train.models._ResNetDriver = functools.partial(train.models.ResNet, stage_sizes=[1], block_cls=train.models.ResNetBlock, num_filters=8)
    train.NUM_CLASSES = 4
    train.create_input_iter = lambda builder, batch_size, image_size, dtype, train, **kwargs: iter(batches if train else batches[:1] * steps)
    splits = {"train": types.SimpleNamespace(num_examples=8 * steps), "validation": types.SimpleNamespace(num_examples=8)}
    train.tfds = types.SimpleNamespace(builder=lambda name: types.SimpleNamespace(info=types.SimpleNamespace(splits=splits)))
    train.restore_checkpoint = lambda state, workdir: state
    train.save_checkpoint = lambda state, workdir: None
    writer = _ScalarWriter()
    train.metric_writers = types.SimpleNamespace(create_default_writer=lambda *a, **k: writer)
    config = Config(model="_ResNetDriver", dataset="synthetic", learning_rate=3.2, warmup_epochs=0.1, momentum=0.9, batch_size=8,
                    shuffle_buffer_size=None, prefetch=1, num_epochs=1.0, log_every_steps=1, cache=False, half_precision=False,
                    num_train_steps=steps, steps_per_eval=1, profile=False)
    train.train_and_evaluate(config, "/tmp/unused")
    return [scalars["train_loss"] for _, scalars in writer.scalars if "train_loss" in scalars]


# imagenet hand fix 1: ResNetBlock's layers built in __init__ (from the factories the parent
# passes), and its call.
# imagenet hand fix 1: ResNet's blocks, which the module rewrite reports (its `block_cls`
# holds one of two classes, built in nested loops), built in __init__ into an nnx.List; the
# blocks themselves, their conv/norm factories and the call-time use_running_average
# convert. Fix 3 calls them.
_IMAGENET_BLOCKS = """\
    self.blocks, features = nnx.List(), self.num_filters
    for i, block_size in enumerate(self.stage_sizes):
      for j in range(block_size):
        strides = (2, 2) if i > 0 and j == 0 else (1, 1)
        self.blocks.append(self.block_cls(filters=self.num_filters * 2**i, strides=strides, conv=partial(self.conv, use_bias=False, dtype=self.dtype), norm=partial(nnx.BatchNorm, momentum=0.9, epsilon=1e-5, dtype=self.dtype, axis_name='batch', use_running_average=None), act=self.act, in_features=features, rngs=rngs))
        features = self.num_filters * 2**i * (4 if self.block_cls is BottleneckResNetBlock else 1)
"""


DRIVERS = {"mnist": drive_mnist, "vae": drive_vae, "ppo": drive_ppo, "sst2": drive_sst2, "seq2seq": drive_seq2seq, "wmt": drive_wmt, "imagenet": drive_imagenet}
# What a person must do after the rewrite, done here so the program can run (and reported).
HAND_FIXES = {
    "mnist": [("dense_0_in_features=None", "dense_0_in_features=7 * 7 * 64",
               "flattened conv output size (the module rewrite cannot derive sizes through reshape)")],
    "sst2": [("encoder_in_features=None", "encoder_in_features=16", "embedding size into the LSTM encoder (not derived through the model's setup)"),
             ("classifier_mlp_in_features=None", "classifier_mlp_in_features=32", "attention output size into the MLP")],
    "seq2seq": [("decoder_lstm_cell_0_lstm_cell_0_in_features=None", "decoder_lstm_cell_0_lstm_cell_0_in_features=ctable.vocab_size",
                 "decoder LSTM input size (one-hot of the previous token)"),
                ("decoder_lstm_cell_0_dense_0_in_features=None", "decoder_lstm_cell_0_dense_0_in_features=FLAGS.hidden_size",
                 "decoder LSTM output size into its Dense: the carry's size (the encoder's hidden size)"),
                ("features=decoder_inputs_in_features,", "features=self.hidden_size,",
                 "decoder LSTM hidden size: Linen's LSTMCell takes it from the carry (the encoder's state), not from `features`")],
    # imagenet: ResNet's blocks (models.py TODO sites res_net_block_0 and dense_0) and the
    # model reaching TrainState.create through `create_model`'s `getattr(models, config.model)`.
    "imagenet": [
        (re.compile(r"(    # TODO\(nnx-migrate\): [^\n]*\n)+    self\.res_net_block_0 = self\.block_cls\([^\n]*\n"), _IMAGENET_BLOCKS,
         "models.py ResNet.__init__ (TODO site res_net_block_0, line 126): the blocks built by the same nested loops into nnx.List `blocks`, "
         "each given the previous one's width"),
        ("*, in_features: int, dense_0_in_features: int, rngs: nnx.Rngs):", "*, in_features: int, rngs: nnx.Rngs):",
         "models.py ResNet (TODO site dense_0 in_features, line 134): the classifier's input size is the last block's width, computed with the blocks (fix 1)"),
        ("nnx.Linear(in_features=dense_0_in_features, ", "nnx.Linear(in_features=features, ", "models.py ResNet (TODO site dense_0, line 134): see fix 2"),
        (re.compile(r"    for i, block_size in enumerate\(self\.stage_sizes\):\n(?:[^\n]*\n){2,8}?        x = self\.res_net_block_0\(x, use_running_average=not train\)\n"),
         "    for block in self.blocks:\n      x = block(x, use_running_average=not train)\n",
         "models.py ResNet.__call__ (TODO site res_net_block_0, line 126): calls the blocks built in __init__"),
        ("return model_cls(num_classes=NUM_CLASSES,", "return functools.partial(model_cls, num_classes=NUM_CLASSES,",
         "train.py create_model (feeds TODO site TrainState.create, line 258): returns the model class with its arguments "
         "(`getattr(models, config.model)` is not a class the pass can follow), so create_train_state can build it with rngs"),
        ("  params, batch_stats = initialized(rng, image_size, model)\n", "  model = model(in_features=3, rngs=nnx.Rngs(rng))\n",
         "train.py create_train_state (TODO site TrainState.create, line 258): builds the NNX model where Linen initialized it (RGB input)"),
        (re.compile(r"  # TODO\(nnx-migrate\): params=params does not come from a converted `init`.*?\n  state = TrainState\.create\(\n.*?\n  \)\n", re.S),
         "  state = TrainState.create(model, tx, dynamic_scale=dynamic_scale)\n",
         "train.py create_train_state (TODO site TrainState.create, line 258): TrainState.create(model, tx, dynamic_scale=...)"),
    ],
    "ppo": [("hidden_in_features=None", "hidden_in_features=11 * 11 * 64",
             "flattened conv output size (the module rewrite cannot derive sizes through reshape)")],
}
# With --pmap jit, after HAND_FIXES: what the TODO at the converted pmap site asks for.
PMAP_JIT_FIXES = {
    "imagenet": [("axis_name='batch', ", "", "models.py (TODO site jax.pmap, train.py line 360): the BatchNorm layers' axis_name "
                  "dropped (under jax.jit they normalize over the whole batch, as pmap's synced ones did)")],
}
# Data-parallel trainers of other corpus packages, converted (not run) with --pmap as given.
TRAINERS = ("nanodl/nanodl/__src/models", "nanodl/nanodl/__src/experimental")


def run(corpus: Path, style: str, programs=PROGRAMS, pmap: str = "keep") -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in programs:
            src = corpus / "flax-examples" / name
            if not src.is_dir():
                continue
            dst = Path(tmp) / name
            results = convert(src, dst, style, pmap)
            todos = [t for r in results for t in r.todos]
            row = {"program": name, "files": sum(r.status == "changed" for r in results),
                   "failed": sum(r.status == "failed" for r in results), "todos": todos, "fixes": []}
            driver = DRIVERS.get(name)
            if driver is not None:
                for old, new, why in HAND_FIXES.get(name, []) + (PMAP_JIT_FIXES.get(name, []) if pmap == "jit" else []):
                    applied = False
                    for path in dst.glob("*.py"):
                        text = path.read_text()
                        if isinstance(old, re.Pattern):
                            text, count = old.subn(lambda _, new=new: new, text)
                        else:
                            count, text = text.count(old), text.replace(old, new)
                        if count:
                            path.write_text(text)
                            applied = True
                    # a fix whose text is gone (the tool converts the site itself) is said so
                    row["fixes"].append(why if applied else f"NOT APPLIED (text not found): {why}")
                module, extra = ENTRY.get(name, ("train", ()))
                try:
                    with program(src, module, extra) as linen:
                        row["linen"] = driver(linen)
                    with program(dst, module, extra) as converted:
                        row["nnx"] = driver(converted)
                except Exception as exc:  # report, keep going
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    if os.environ.get("CORPUS_TRAINING_TRACEBACK"):
                        traceback.print_exc()
            if name == "lm1b" and (corpus / "flax-examples" / "lm1b_nnx").is_dir():
                row["structure"] = compare_structure(dst, corpus / "flax-examples" / "lm1b_nnx")
            rows.append(row)
    return rows


def run_trainers(corpus: Path, style: str, pmap: str) -> list[dict]:
    """The pmap trainers of TRAINERS folders: per file that calls jax.pmap, its TODO sites."""
    rows = []
    for folder in TRAINERS:
        src = corpus / folder
        if not src.is_dir():
            continue
        files = [p for p in iter_python_files([str(src)]) if "jax.pmap" in Path(p).read_text()]
        for result in rewrite_files(files, train_style=style, pmap=pmap):
            rows.append({"file": str(Path(result.path).relative_to(corpus)), "status": result.status, "todos": result.todos,
                         "jit": result.new_text is not None and "jax.pmap(" not in result.new_text})
    return rows


def render_trainers(rows: list[dict]) -> str:
    lines = ["", "pmap trainers (converted, not run):", "", "| file | status | TODO sites | pmap sites | jax.pmap left |", "|---|---|---|---|---|"]
    for row in rows:
        pmap_sites = [t for t in row["todos"] if t.construct == "jax.pmap"]
        lines.append(f"| {row['file']} | {row['status']} | {len(row['todos'])} | {len(pmap_sites)} | {'no' if row['jit'] else 'yes'} |")
    whys = sorted({t.why for row in rows for t in row["todos"] if t.construct == "jax.pmap"})
    lines += ["", *(f"- {why}" for why in whys)]
    return "\n".join(lines)


# Markers compared between our conversion of lm1b and Flax's own port (lm1b_nnx).
FEATURES = {
    "merges NNX objects in the step": ("nnx.merge(", ".merge()"),
    "optimizer.update(model, grads)": ("optimizer.update(",),
    "Linen-style apply_gradients": ("apply_gradients(",),
    "nnx.value_and_grad / nnx.grad": ("nnx.value_and_grad(", "nnx.grad("),
    "jax.value_and_grad / jax.grad": ("jax.value_and_grad(", "jax.grad("),
    "calls the module directly": ("model(", "module(", "params("),
    "Linen apply / apply_fn": (".apply(", "apply_fn("),
    "TODO(nnx-migrate)": ("TODO(nnx-migrate)",),
}


def compare_structure(converted: Path, reference: Path, module: str = "train.py") -> str:
    """Per function of the reference port: which of FEATURES each side's function uses."""
    import ast

    def functions(path: Path) -> dict[str, str]:
        text = path.read_text()
        tree = ast.parse(text)
        return {n.name: ast.get_source_segment(text, n) for n in tree.body if isinstance(n, ast.FunctionDef)}

    ours, theirs = functions(converted / module), functions(reference / module)
    lines = [f"Structure of {module}: ours (converted lm1b) vs Flax's lm1b_nnx port", "",
             "| function | " + " | ".join(FEATURES) + " |", "|---|" + "---|" * len(FEATURES)]
    for name in [n for n in theirs if n in ("train_step", "eval_step", "predict_step", "evaluate", "generate_prediction", "train_and_evaluate")]:
        cells = []
        for markers in FEATURES.values():
            a = any(m in ours.get(name, "") for m in markers)
            b = any(m in theirs[name] for m in markers)
            cells.append({(True, True): "both", (True, False): "ours", (False, True): "port", (False, False): "-"}[(a, b)])
        lines.append(f"| {name}{'' if name in ours else ' (missing in ours)'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _losses(values) -> str:
    if not values:
        return "-"
    trend = "falls" if values[-1] < values[0] else "does NOT fall"
    return f"{values[0]:.4f} -> {values[-1]:.4f} ({trend})"


def render(rows: list[dict], style: str, pmap: str = "keep") -> str:
    lines = [f"train style: {style}, --pmap {pmap}", "",
             "| program | files changed | TODO sites | Linen loss (first -> last) | converted loss (first -> last) | hand fixes |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        if "linen" in row or "error" in row:
            linen, nnx = _losses(row.get("linen")), _losses(row.get("nnx"))
            if "error" in row:
                nnx = f"error: {row['error']}"
        else:
            linen = nnx = "not run (no driver)"
        lines.append(f"| {row['program']} | {row['files']} | {len(row['todos'])} | {linen} | {nnx} | {'; '.join(row['fixes']) or '-'} |")
    for row in rows:
        if "structure" in row:
            lines += ["", row["structure"]]
    lines += ["", "TODO sites:"]
    for row in rows:
        for todo in row["todos"]:
            lines.append(f"- {row['program']}: {Path(todo.path).name}:{todo.line}: {todo.construct}: {todo.why}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?")
    parser.add_argument("--style", default="flat-state", choices=("flat-state", "nnx-jit"))
    parser.add_argument("--pmap", default="keep", choices=("keep", "jit"))
    parser.add_argument("--programs", nargs="+", default=list(PROGRAMS), choices=PROGRAMS)
    parser.add_argument("--trainers", action="store_true", help="also convert the pmap trainers of other corpus packages (TRAINERS)")
    args = parser.parse_args(argv)
    corpus = find_corpus(args.corpus)
    print(render(run(corpus, args.style, args.programs, args.pmap), args.style, args.pmap))
    if args.trainers:
        print(render_trainers(run_trainers(corpus, args.style, args.pmap)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
