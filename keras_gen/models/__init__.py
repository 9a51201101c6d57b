"""The zoo's models, and lookup by name."""

from keras_gen.models.autoregressive import AutoregressiveModel
from keras_gen.models.base import GenerativeModel
from keras_gen.models.diffusion import Diffusion, DiffusionModel
from keras_gen.models.gan import DCGAN, WGANGP, AdversarialModel, ConditionalGAN
from keras_gen.models.pixelcnn import GatedPixelCNN, PixelCNN
from keras_gen.models.pixelrnn import PixelRNN
from keras_gen.models.pixelvae import PixelVAE
from keras_gen.models.vae import VAE, LatentVariableModel
from keras_gen.models.vqvae import VQVAE, VQVAEPrior

MODELS = {
    "vae": VAE,
    "pixelcnn": PixelCNN,
    "gated_pixelcnn": GatedPixelCNN,
    "dcgan": DCGAN,
    "wgan_gp": WGANGP,
    "conditional_gan": ConditionalGAN,
    "pixelrnn": PixelRNN,
    "pixelvae": PixelVAE,
    "vqvae": VQVAE,
    "vqvae_prior": VQVAEPrior,
    "diffusion": Diffusion,
}


def get(name):
    """Returns the model class registered as `name` (e.g. "vae")."""
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.") from None
