"""CAM-attention head: the class activation maps of the top-5 classes reweight the last map before pooling (paper 001).

Du & Ma, "Multi-Attention Mechanism Fusion for Fine-Grained Image Classification", section 2.2 and Table 1
("FCN-ResNet50"); the head is ``fgic.nn.cam_attention.CAMAttention``, our reading of the "CAM attention" the
paper names but never defines (see there): with the classifier's own weights, CAM_k = W_k . f + b_k; A = the
min-max normalised mean CAM of the top_k predicted classes; logits = W mean_ij((1 + A_ij) f_ij) + b.

Where: the classifier ``fc`` (``StudyResNet.forward_head`` lets a classifier with ``pool(fmap)`` pool the map
itself), as ``resnet50_cam_head``. The plain FCN head (1x1-conv classifier, mean of the CAM) is not registered:
it equals GAP + linear exactly (``fgic.nn.fcn_head``), i.e. ``none``.

Note: this module adds no parameter (the CAM uses the linear classifier's weights); it changes the function
(the pooling), not the parameter count.
"""

from __future__ import annotations

from functools import partial

from fgic.models.study import STUDY_MODULES, StudyResNet
from fgic.nn.cam_attention import CAMAttention


@STUDY_MODULES.register("cam_head", paper="001", where="the classifier: CAM-attention pooling instead of GAP",
                        adds_parameters=False)
def cam_head(net: StudyResNet, top_k: int = 5) -> None:
    """Paper 001's CAM attention: the top-k class maps reweight the last feature map (1 + A) before pooling."""
    net.classifier_factory = partial(CAMAttention, top_k=top_k)  # (C, K) -> a classifier with pool(fmap)
    net.reset_classifier(net.num_classes)
