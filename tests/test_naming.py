from nnx_migrate.naming import nnx_attribute_name, nnx_path_candidates, snake_case


def test_snake_case_handles_acronyms():
    assert snake_case("MultiHeadDotProductAttention") == "multi_head_dot_product_attention"
    assert snake_case("LSTMCell") == "lstm_cell"
    assert snake_case("Dense") == "dense"


def test_auto_names_become_snake_case_and_user_names_are_kept():
    assert nnx_attribute_name("Dense_0") == "dense_0"
    assert nnx_attribute_name("ConvTranspose_12") == "conv_transpose_12"
    assert nnx_attribute_name("encoder") == "encoder"
    assert nnx_attribute_name("layer_1") == "layer_1"  # user-chosen, not Linen's pattern


def test_path_candidates_include_list_elements():
    # an unnamed Dense built in a loop: element 0 of `dense` (`dense_layers` where the class
    # has a `dense` already); a loop's f'Dense_{i}' keeps the user's `Dense`
    assert nnx_path_candidates("Dense_0") == [("Dense_0",), ("dense_0",), ("Dense", 0), ("dense", 0), ("dense_layers", 0)]
    assert nnx_path_candidates("BatchNorm_3")[-2:] == [("batch_norm", 3), ("batch_norm_layers", 3)]
    assert nnx_path_candidates("layers_3") == [("layers_3",), ("layers", 3)]
    assert nnx_path_candidates("encoder") == [("encoder",)]
    # a loop's f'conv{i}': Linen's conv12 is element 12 of the list conv
    assert nnx_path_candidates("conv12") == [("conv12",), ("conv", 12)]
    assert nnx_path_candidates("enc2_3") == [("enc2_3",), ("enc2", 3)]
    # a setup dict's entry: Linen's heads_out_a is key 'out_a' of heads (or 'a' of heads_out)
    assert nnx_path_candidates("heads_out_a") == [("heads_out_a",), ("heads", "out_a"), ("heads_out", "a")]


def test_keyword_names_get_a_trailing_underscore():
    # Linen's LSTM forget gate is `if`; NNX (and the rewrite) can only spell it `if_`.
    assert nnx_attribute_name("if") == "if_"
    assert nnx_attribute_name("lambda") == "lambda_"
    assert nnx_path_candidates("if") == [("if",), ("if_",)]


LOOP = """
import flax.linen as nn

class Net(nn.Module):
  depth: int = 3
{extra}
  @nn.compact
  def __call__(self, x):
    for _ in range(self.depth):
      x = nn.Dense(4)(x)
    return x
"""


def test_unnamed_layers_of_a_loop_are_a_snake_case_list_the_harness_finds():
    from nnx_migrate.rewrite import rewrite_source

    plain = rewrite_source(LOOP.format(extra=""), "m.py").new_text
    assert "self.dense = nnx.List()" in plain and "self.dense[" in plain
    # a field already named `dense`: the list takes the other name naming.py maps
    taken = rewrite_source(LOOP.format(extra="  dense: int = 1"), "m.py").new_text
    assert "self.dense_layers = nnx.List()" in taken and "self.dense = dense" in taken
    assert ("dense_layers", 2) in nnx_path_candidates("Dense_2")


def test_names_that_are_no_identifier_become_valid_attributes():
    # `name='0'`, `name='out-proj'`: every other character is `_`, a leading digit gets one
    assert nnx_attribute_name("0") == "_0"
    assert nnx_attribute_name("out-proj") == "out_proj"
    assert nnx_attribute_name("2x") == "_2x"
    assert nnx_path_candidates("0") == [("0",), ("_0",)]
    for name in ("0", "out-proj", "a.b", "-", ""):
        assert nnx_attribute_name(name).isidentifier(), name
