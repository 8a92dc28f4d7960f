"""The gradient-based class activation maps beyond Grad-CAM, and Eigen-CAM.

Each method here is only its ``combine(A, G) -> (N, h, w)``: how it weighs
and sums the channels of the layer's activations ``A`` given the gradients
``G = d S / d A`` of the pre-softmax target logit ``S``. Everything else
(layer choice and checks, batching, the compiled function, the final ReLU,
the bilinear resize) is the shared base in :mod:`keras_convviz.methods.gradcam`
(:func:`~keras_convviz.methods.gradcam.class_activation_map`), in the manner
of pytorch-grad-cam's ``base_cam.py``.

Every function takes ``(model, inputs, target=None, layer=None,
upsample=True, output=None, batch_size=32)`` as :func:`gradcam` does and
returns float32 ``(N, H, W)`` (``upsample=True``) or ``(N, h, w)``, not
normalized, ``>= 0``: ``model`` a Keras model; ``inputs`` a preprocessed
batch ``(N, H, W, C)``; ``target`` a class index, one per image, or None
(the predicted class); ``layer`` a spatial layer the score depends on
(default: the last spatial layer before the score, as Grad-CAM); ``output``
the output to explain (multi-output models); ``batch_size`` images per
compiled call.
"""

from __future__ import annotations

import tensorflow as tf

from .gradcam import channel_weighted, class_activation_map

__all__ = ["gradcam_plus_plus", "layercam", "xgradcam", "hirescam", "eigencam"]


def spatial_sum(tensor):
    """Sum over the two spatial axes of ``(N, h, w, K)``, kept as ``(N, 1, 1, K)``."""
    return tf.reduce_sum(tensor, axis=(1, 2), keepdims=True)


# ---------------------------------------------------------------- Grad-CAM++
def plus_plus_alphas(maps, grads):
    """Grad-CAM++'s closed-form ``alpha_ij^k`` (Chattopadhyay et al. 2018, eq. 19 with ``Y = exp(S)``).

    With ``Y = exp(S)`` and a piecewise-linear network the derivatives of
    ``Y`` are ``exp(S) G``, ``exp(S) G^2``, ``exp(S) G^3``, so
    ``alpha = G^2 / (2 G^2 + G^3 sum_ab A_ab) = 1 / (2 + G sum_ab A_ab)``:
    the ``exp(S)`` factors cancel and are never formed (no overflow for large
    logits). ``alpha = 0`` where ``G = 0`` (or the denominator is 0). As in the
    authors' released code and tf-keras-vis, each channel's alphas are then
    divided by their spatial sum (left as they are where that sum is 0).
    """
    alphas = tf.where(grads != 0, tf.math.divide_no_nan(1.0, 2.0 + grads * spatial_sum(maps)), 0.0)
    norm = spatial_sum(alphas)
    return alphas / tf.where(norm == 0, 1.0, norm)


def _plus_plus_combine(maps, grads):
    weights = spatial_sum(plus_plus_alphas(maps, grads) * tf.nn.relu(grads))
    return channel_weighted(weights, maps)


def gradcam_plus_plus(model, inputs, target=None, layer=None, upsample=True, output=None, batch_size=32):
    """Grad-CAM++ (Chattopadhyay et al. 2018, arXiv:1710.11063) of the target logit.

    ``relu(sum_k w_k A_k)`` with ``w_k = sum_ij alpha_ij^k relu(G_ij^k)`` and
    the closed-form alphas of :func:`plus_plus_alphas` (normalized per channel
    as the authors' code and tf-keras-vis do; pytorch-grad-cam does not).
    The paper's score is ``Y = exp(S)``, whose gradient ``exp(S) G`` would
    scale each image's map by ``exp(S)``: the maps here are tf-keras-vis'
    ``GradcamPlusPlus`` maps (``normalize_cam=False``) divided by that
    positive factor, so normalized maps are the same. Arguments and returns
    as :func:`~keras_convviz.methods.gradcam.gradcam`.
    """
    return class_activation_map(model, inputs, target, layer, upsample, output, batch_size,
                                "gradcam_plus_plus", _plus_plus_combine)


# ---------------------------------------------------------------- Layer-CAM
def _layercam_combine(maps, grads):
    return tf.reduce_sum(tf.nn.relu(grads) * maps, axis=-1)


def layercam(model, inputs, target=None, layer=None, upsample=True, output=None, batch_size=32):
    """Layer-CAM (Jiang et al. 2021, "LayerCAM", IEEE TIP 30) of the target logit.

    ``relu(sum_k relu(G^k) * A^k)``: every position's activation weighted by
    its own positive gradient (no spatial pooling of the gradients), as
    tf-keras-vis' ``Layercam``. Arguments and returns as
    :func:`~keras_convviz.methods.gradcam.gradcam`.
    """
    return class_activation_map(model, inputs, target, layer, upsample, output, batch_size,
                                "layercam", _layercam_combine)


# ---------------------------------------------------------------- XGrad-CAM
def _xgradcam_combine(maps, grads):
    weights = tf.math.divide_no_nan(spatial_sum(grads * maps), spatial_sum(maps))
    return channel_weighted(weights, maps)


def xgradcam(model, inputs, target=None, layer=None, upsample=True, output=None, batch_size=32):
    """XGrad-CAM (Fu et al. 2020, arXiv:2008.02312) of the target logit.

    ``relu(sum_k w_k A^k)`` with ``w_k = sum_ij (A_ij^k / sum_ab A_ab^k) G_ij^k``:
    the gradients averaged with the activations as weights (the paper's
    eq. 9). A channel whose activations sum to 0 gets ``w_k = 0``
    (pytorch-grad-cam adds 1e-7 to the sum instead). Arguments and returns
    as :func:`~keras_convviz.methods.gradcam.gradcam`.
    """
    return class_activation_map(model, inputs, target, layer, upsample, output, batch_size,
                                "xgradcam", _xgradcam_combine)


# ---------------------------------------------------------------- HiResCAM
def _hirescam_combine(maps, grads):
    return tf.reduce_sum(grads * maps, axis=-1)


def hirescam(model, inputs, target=None, layer=None, upsample=True, output=None, batch_size=32):
    """HiResCAM (Draelos & Carin 2020, arXiv:2011.08891) of the target logit.

    ``relu(sum_k G^k * A^k)``: the element-wise gradient x activation summed
    over channels, without Grad-CAM's spatial mean of the gradients. It equals
    Grad-CAM when the layer is followed by global average pooling and a
    linear head (the gradient is then constant over positions). Arguments
    and returns as :func:`~keras_convviz.methods.gradcam.gradcam`.
    """
    return class_activation_map(model, inputs, target, layer, upsample, output, batch_size,
                                "hirescam", _hirescam_combine)


# ---------------------------------------------------------------- Eigen-CAM
def first_component(maps):
    """Each image's ``(h, w)`` projection on the first principal component of its activations.

    The ``h w`` positions are the samples and the ``K`` channels the
    variables: ``A`` reshaped to ``(h w, K)``, centered over positions,
    projected on its first right singular vector (``u_1 s_1``). The sign of a
    singular vector is arbitrary; here it is chosen so that the projection
    correlates non-negatively with the mean activation over channels
    ``mean_k A^k``.
    """
    h, w, k = maps.shape[1:]
    flat = tf.reshape(maps, (-1, h * w, k))
    centered = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
    _, _, v = tf.linalg.svd(centered)
    projection = tf.linalg.matvec(centered, v[:, :, 0])
    mean = tf.reduce_mean(flat, axis=2)
    agreement = tf.reduce_sum(projection * (mean - tf.reduce_mean(mean, axis=1, keepdims=True)), axis=1)
    projection = tf.where(agreement[:, None] < 0, -projection, projection)
    return tf.reshape(projection, (-1, h, w))


def _eigencam_combine(maps, grads):
    return first_component(maps)


def eigencam(model, inputs, target=None, layer=None, upsample=True, output=None, batch_size=32):
    """Eigen-CAM (Muhammad & Yeasin 2020, arXiv:2008.00299): no gradient, no class.

    ``relu`` of the layer's activations projected on their first principal
    component (:func:`first_component`: positions as samples, channels as
    variables, centered as pytorch-grad-cam does), with the sign that makes
    the projection correlate positively with the mean activation over
    channels (pytorch-grad-cam leaves the sign to the SVD). ``target`` is
    validated but does not change the maps; ``output`` picks the default
    layer. Only the layers up to ``layer`` run. Arguments and returns as
    :func:`~keras_convviz.methods.gradcam.gradcam`.
    """
    return class_activation_map(model, inputs, target, layer, upsample, output, batch_size,
                                "eigencam", _eigencam_combine, gradients=False)
