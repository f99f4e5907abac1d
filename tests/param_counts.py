"""Parameter counts derived from layer shapes as the official Keras layers define them (shared by model tests)."""


def conv_params(cin, cout, k):
    """Conv2D / Conv2DTranspose: kernel k*k*cin*cout + bias cout."""
    return cin * cout * k * k + cout


def dense_params(cin, cout, bias=True):
    """Dense: kernel cin*cout (+ bias cout)."""
    return cin * cout + (cout if bias else 0)
