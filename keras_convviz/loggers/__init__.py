"""The callback's per-method loggers, one class per visualization method.

``base`` holds the narrow :class:`~keras_convviz.loggers.base.LogContext` a
logger sees and the :class:`~keras_convviz.loggers.base.MethodLogger` base
class; ``scores`` the methods that explain a class score (saliency, SmoothGrad,
guided backprop, integrated gradients, Grad-CAM, class models); ``layers`` the
methods that look at one layer's feature maps (deconv, occlusion, box
filters, top-k patches). ``keras_convviz.callbacks.METHODS`` maps the method
names to these classes.
"""
