"""Models: CausalNL and the baselines, each a `keras.Model` trained by `fit()` on noisy labels.

One public model per module (`causalnl`, `ce`, `coteaching`, `decoupling`,
`dividemix`, `instancegm`, `mentornet`, `mixup`; `loss_correction` holds the three transition-based
ones). Beneath them: `wrapper` (what every model shares), `two_networks`
(what the two-network models share), `forget_rate` and `callbacks` (the
small-loss schedule), `losses`, `baseline_losses` and `distributions` (the
objectives as functions of tensors), and `estimate` (the noise rate from
noisy labels alone, for forget_rate="auto").
"""

from tf_causalnl.models.causalnl import CausalNL
from tf_causalnl.models.ce import NoisyLabelClassifier
from tf_causalnl.models.coteaching import CoTeaching
from tf_causalnl.models.decoupling import Decoupling
from tf_causalnl.models.dividemix import DivideMix
from tf_causalnl.models.instancegm import InstanceGM
from tf_causalnl.models.loss_correction import Forward, Reweight, TRevision
from tf_causalnl.models.mentornet import MentorNet
from tf_causalnl.models.mixup import Mixup
