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
    assert nnx_path_candidates("Dense_0") == [("Dense_0",), ("dense_0",), ("Dense", 0)]
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
