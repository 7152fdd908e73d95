"""Example constructions for corpus classes, so `benchmarks/corpus.py` can prove them.

Key: "<package>/<path inside the package>:<Class>". `fields(module)` gets the ORIGINAL
Linen module object (to build config dataclasses it defines); inputs are shape tuples
(float32 normal), ("int", shape, high) or a list of those (a tuple of arrays); `call_kwargs`
go to both calls. Small shapes: these run on a CPU in seconds.
"""


def _wmt_config(m, **extra):
    return m.TransformerConfig(
        vocab_size=13, output_vocab_size=13, emb_dim=8, num_heads=2, num_layers=2,
        qkv_dim=8, mlp_dim=16, max_len=16, dropout_rate=0.0, attention_dropout_rate=0.0,
        deterministic=True, **extra,
    )


EXAMPLES = {
    "flax-examples/vae/models.py:Encoder": {"fields": lambda m: {"latents": 3}, "inputs": [(2, 12)]},
    "flax-examples/vae/models.py:Decoder": {"fields": lambda m: {}, "inputs": [(2, 3)]},
    "flax-examples/vae/models.py:VAE": {"fields": lambda m: {"latents": 3}, "inputs": [(2, 784), ("key",)]},
    "flax-examples/wmt/models.py:MlpBlock": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [(2, 3, 8)]},
    "flax-examples/wmt/models.py:Encoder1DBlock": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [(2, 3, 8)]},
    "flax-examples/wmt/models.py:EncoderDecoder1DBlock": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [(2, 3, 8), (2, 4, 8)]},
    "flax-examples/lm1b/models.py:MlpBlock": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [(2, 3, 8)]},
    "flax-examples/lm1b/models.py:EncoderDecoder1DBlock": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [(2, 3, 8)]},
    "flax-examples/wmt/models.py:AddPositionEmbs": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [(2, 5, 8)]},
    "flax-examples/lm1b/models.py:AddPositionEmbs": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [(2, 5, 8)]},
    "flax-examples/wmt/models.py:Encoder": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [("int", (2, 5), 13)]},
    "flax-examples/wmt/models.py:Decoder": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [(2, 4, 8), ("int", (2, 5), 13)]},
    # shared embeddings: the encoder and decoder call the parent's nn.Embed (Encoder and
    # Decoder above build their own)
    "flax-examples/wmt/models.py:Transformer": {"fields": lambda m: {"config": _wmt_config(m, share_embeddings=True)}, "inputs": [("int", (2, 4), 13), ("int", (2, 5), 13)]},
    "flax-examples/lm1b/models.py:Decoder": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [("int", (2, 5), 13)]},
    "flax-examples/lm1b/models.py:TransformerLM": {"fields": lambda m: {"config": _wmt_config(m)}, "inputs": [("int", (2, 5), 13)]},
    "flax-examples/sst2/models.py:Embedder": {"fields": lambda m: {"vocab_size": 13, "embedding_size": 4}, "inputs": [("int", (2, 5), 13)]},
    "flax-examples/sst2/models.py:MLP": {"fields": lambda m: {"hidden_size": 4, "output_size": 3}, "inputs": [(2, 5)]},
    "flax-examples/sst2/models.py:KeysOnlyMlpAttention": {"fields": lambda m: {"hidden_size": 4}, "inputs": [(2, 5, 6), ("bool", (2, 5))]},
    # training vs evaluation from is_mutable_collection('batch_stats'): the harness runs
    # Linen with batch_stats mutable and NNX in its default (training) mode
    "jax_resnet/jax_resnet/common.py:ConvBlock": {"fields": lambda m: {"n_filters": 4, "is_last": True}, "inputs": [(2, 6, 6, 3)]},
    "diffusers/models/attention_flax.py:FlaxGEGLU": {"fields": lambda m: {"dim": 4}, "inputs": [(1, 3, 4)]},
    "diffusers/models/embeddings_flax.py:FlaxTimestepEmbedding": {"fields": lambda m: {"time_embed_dim": 8}, "inputs": [(2, 5)]},
    "diffusers/models/embeddings_flax.py:FlaxTimesteps": {"fields": lambda m: {"dim": 8}, "inputs": [(3,)]},
    "diffusers/models/resnet_flax.py:FlaxDownsample2D": {"fields": lambda m: {"out_channels": 4}, "inputs": [(1, 8, 8, 4)]},
    # GroupNorm(num_groups=32) needs 32 channels
    "diffusers/models/resnet_flax.py:FlaxResnetBlock2D": {"fields": lambda m: {"in_channels": 32, "out_channels": 32}, "inputs": [(1, 4, 4, 32), (1, 8)]},
    "diffusers/models/resnet_flax.py:FlaxUpsample2D": {"fields": lambda m: {"out_channels": 3}, "inputs": [(1, 4, 4, 2)]},
    # sizes the rewrite left as constructor arguments (the flattened conv output into
    # `hidden`, the attention output into `mlp`, the heads' width into the output
    # projection): the harness reads them off the Linen variables' shapes
    "flax-examples/ppo/models.py:ActorCritic": {"fields": lambda m: {"num_outputs": 3}, "inputs": [(1, 16, 16, 4)]},
    "flax-examples/sst2/models.py:AttentionClassifier": {"fields": lambda m: {"hidden_size": 4, "output_size": 3}, "inputs": [(2, 5, 6), ("int", (2,), 5)], "call_kwargs": {"deterministic": True}},
    "diffusers/models/attention_flax.py:FlaxAttention": {"fields": lambda m: {"query_dim": 8, "heads": 2, "dim_head": 4}, "inputs": [(1, 5, 8)]},
    "diffusers/models/attention_flax.py:FlaxFeedForward": {"fields": lambda m: {"dim": 8}, "inputs": [(1, 3, 8)]},
    # Flax's Linen-to-NNX guide (flax-docs, benchmarks/guide_snippets.py): the Linen side
    # of each codediff, proven against its conversion (not against the guide's NNX side,
    # which draws other weights)
    "flax-docs/basic_module_definition.py:Block": {"fields": lambda m: {"features": 4}, "inputs": [(2, 3)]},
    "flax-docs/basic_module_definition.py:Model": {"fields": lambda m: {"dmid": 4, "dout": 2}, "inputs": [(2, 3)]},
    "flax-docs/collections_and_variable_types.py:Block": {"fields": lambda m: {"features": 4}, "inputs": [(2, 3)]},
    "flax-docs/using_multiple_methods.py:AutoEncoder": {"fields": lambda m: {"embed_dim": 3, "output_dim": 5}, "inputs": [(2, 5)]},
    "flax-docs/transformations.py:RNNCell": {"fields": lambda m: {"hidden_size": 4}, "inputs": [(2, 4), (2, 3)]},
    "flax-docs/transformations.py:RNN": {"fields": lambda m: {"hidden_size": 4}, "inputs": [(2, 5, 3)]},
    "flax-docs/scan_over_layers.py:MLP": {"fields": lambda m: {"features": 4, "num_layers": 3}, "inputs": [(2, 4)]},
}
