"""The VLA agent: a policy (:mod:`jvla.agent.policy`) around a decoder, local
(:mod:`jvla.agent.decoder`) or a vLLM server (:mod:`jvla.agent.remote`)."""

from jvla.agent.decoder import Decision, Decoder
from jvla.agent.policy import VLAPolicy, make_policy
from jvla.agent.remote import OpenAIDecoder

__all__ = ["Decision", "Decoder", "OpenAIDecoder", "VLAPolicy", "make_policy"]
