"""The label-noise baselines, each a Keras model trained by `fit()`: the eight of Section 4.1, and DivideMix.

  NoisyLabelClassifier   CE: cross-entropy on the noisy labels
  CoTeaching             Han et al. 2018
  Decoupling             Malach & Shalev-Shwartz 2017
  MentorNet              the predefined-curriculum (self-paced) MentorNet of Jiang et al. 2018
  Mixup                  Zhang et al. 2018
  Forward                Patrini et al. 2017
  Reweight               Liu & Tao 2016
  TRevision              Xia et al. 2019
  DivideMix              Li, Socher & Hoi 2020 (not in the paper's table; the field's strongest recipe)
"""

from tf_causalnl.models.ce import NoisyLabelClassifier
from tf_causalnl.models.coteaching import CoTeaching
from tf_causalnl.models.decoupling import Decoupling
from tf_causalnl.models.dividemix import DivideMix
from tf_causalnl.models.loss_correction import Forward, Reweight, TRevision
from tf_causalnl.models.mentornet import MentorNet
from tf_causalnl.models.mixup import Mixup
