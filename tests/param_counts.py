"""Parameter counts derived from layer shapes as the official Keras layers define them (shared by model tests)."""


def conv_params(cin, cout, k):
    """Conv2D / Conv2DTranspose: kernel k*k*cin*cout + bias cout."""
    return cin * cout * k * k + cout


def dense_params(cin, cout, bias=True):
    """Dense: kernel cin*cout (+ bias cout)."""
    return cin * cout + (cout if bias else 0)


def slot_attention_params(d, h):
    """The official SlotAttention module with slot size d and MLP hidden size h."""
    return (
        3 * 2 * d  # LayerNorms on inputs, slots, mlp
        + 2 * d  # slots_mu, slots_log_sigma
        + 3 * dense_params(d, d, bias=False)  # q, k, v
        + 3 * (d * d + d * d) + 2 * 3 * d  # Keras GRUCell (reset_after=True): kernel, recurrent kernel, 2 biases
        + dense_params(d, h) + dense_params(h, d)
    )
