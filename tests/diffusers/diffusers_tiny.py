"""Tiny random diffusers pipelines for every supported family, built from configs (no downloads).

A ``tokenizers`` WordLevel model wrapped in ``PreTrainedTokenizerFast`` stands in for the hub
tokenizers; T5 / CLIP text encoders come from tiny configs. Every module is put in eval mode
(modules built from a config start in training mode) and weights are seeded.
"""

from __future__ import annotations

import copy
import types

import torch

WORDS = (
    "a an the astronaut walks through puddle watches fireworks cat dog runs on beach at night sunset "
    "red blue city street forest rain snow jumps sits flies bird over mountain river car drives"
).split()


def make_tokenizer(max_length: int = 16):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "</s>": 2, "<s>": 3, ".": 4, ",": 5}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="</s>",
        bos_token="<s>",
        model_max_length=max_length,
    )


# One tiny T5-style encoder shape serves CogVideoX/LTX (T5) and Wan (UMT5).
_T5_SIZE = dict(
    vocab_size=64,
    d_kv=8,
    d_ff=37,
    num_layers=1,
    num_heads=4,
    relative_attention_num_buckets=8,
    dropout_rate=0.0,
    decoder_start_token_id=0,
)


def _t5(d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(d_model=d_model, **_T5_SIZE))


def _umt5(d_model: int = 32):
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(d_model=d_model, **_T5_SIZE))


def _clip(hidden: int = 32):
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(
        bos_token_id=3,
        eos_token_id=2,
        pad_token_id=0,
        hidden_size=hidden,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=64,
        max_position_embeddings=77,
        projection_dim=hidden,
    )
    return CLIPTextModel(cfg)


def _finish(pipe):
    for name in ("transformer", "transformer_2", "unet", "vae", "text_encoder", "text_encoder_2"):
        m = getattr(pipe, name, None)
        if isinstance(m, torch.nn.Module):
            m.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_cogvideox(rotary: bool = False):
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4,
        attention_head_dim=16 if rotary else 8,
        in_channels=4,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=32,
        num_layers=1,
        sample_width=4,
        sample_height=4,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
        use_rotary_positional_embeddings=rotary,
        use_learned_positional_embeddings=False,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    scheduler = CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
        set_alpha_to_one=True,
        clip_sample=False,
    )
    torch.manual_seed(0)
    pipe = CogVideoXPipeline(
        tokenizer=make_tokenizer(16),
        text_encoder=_t5(32),
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
    )
    return _finish(pipe)


def _wan_vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )


def unipc_flow():
    """The scheduler the Wan 2.1 / 2.2 checkpoints ship (their scheduler_config.json, flow_shift 3)."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=3.0,
        solver_order=2,
        solver_type="bh2",
        lower_order_final=True,
        predict_x0=True,
        final_sigmas_type="zero",
        timestep_spacing="linspace",
    )


def build_wan(two_experts: bool = False, unipc: bool = False, expand_timesteps: bool = False):
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )

    def tr(seed):
        torch.manual_seed(seed)
        return WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=16,
            out_channels=16,
            text_dim=32,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        )

    vae = _wan_vae()
    torch.manual_seed(0)
    pipe = WanPipeline(
        tokenizer=make_tokenizer(16),
        text_encoder=_umt5(32),
        vae=vae,
        transformer=tr(0),
        transformer_2=tr(1) if two_experts else None,
        scheduler=unipc_flow() if unipc else FlowMatchEulerDiscreteScheduler(shift=3.0),
        boundary_ratio=0.875 if two_experts else None,
        expand_timesteps=expand_timesteps,
    )
    return _finish(pipe)


def build_ltx():
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4,
        upsample_factor=(1,) * 4,
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    torch.manual_seed(0)
    pipe = LTXPipeline(
        tokenizer=make_tokenizer(16),
        text_encoder=_t5(32),
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
    )
    return _finish(pipe)


def _sd_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=[8, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=32,
    )


def _ddim(**overrides):
    from diffusers import DDIMScheduler

    kw = dict(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="linear",
        clip_sample=False,
        steps_offset=1,
        set_alpha_to_one=False,
        timestep_spacing="leading",
    )
    return DDIMScheduler(**{**kw, **overrides})


def build_animatediff(scheduler: str | None = None, **ddim):
    """AnimateDiff with DDIM (``ddim`` overrides its config) or ``scheduler`` built from DDIM's config."""
    import diffusers
    from diffusers import AnimateDiffPipeline, MotionAdapter, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    torch.manual_seed(0)
    motion = MotionAdapter(
        block_out_channels=(8, 16),
        motion_layers_per_block=1,
        motion_norm_num_groups=2,
        motion_num_attention_heads=2,
        motion_max_seq_length=32,
    )
    torch.manual_seed(0)
    pipe = AnimateDiffPipeline(
        vae=_sd_vae(),
        text_encoder=_clip(32),
        tokenizer=make_tokenizer(77),
        unet=unet,
        motion_adapter=motion,
        scheduler=getattr(diffusers, scheduler).from_config(_ddim().config) if scheduler else _ddim(**ddim),
    )
    return _finish(pipe)


def build_modelscope():
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel

    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=2,
    )
    torch.manual_seed(0)
    pipe = TextToVideoSDPipeline(
        vae=_sd_vae(), text_encoder=_clip(32), tokenizer=make_tokenizer(77), unet=unet, scheduler=_ddim()
    )
    return _finish(pipe)


def _llama(hidden: int = 16):
    from transformers import LlamaConfig, LlamaModel

    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=hidden,
        intermediate_size=37,
        num_hidden_layers=2,  # HunyuanVideo reads the hidden state two layers from the top
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=3,
        eos_token_id=2,
    )
    return LlamaModel(cfg)


def build_hunyuanvideo():
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=1,
        num_single_layers=1,
        num_refiner_layers=1,
        patch_size=1,
        patch_size_t=1,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(2, 2, 4),
    )
    vae = _hunyuan_vae()
    torch.manual_seed(0)
    pipe = HunyuanVideoPipeline(
        text_encoder=_llama(16),
        tokenizer=make_tokenizer(128),  # the prompt template's 95 cropped tokens + max_sequence_length
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=_clip(8),
        tokenizer_2=make_tokenizer(77),
    )
    return _finish(pipe)


def _qwen25vl_text(hidden: int = 16):
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

    rope = {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}
    cfg = Qwen2_5_VLTextConfig(
        vocab_size=64,
        hidden_size=hidden,
        intermediate_size=37,
        num_hidden_layers=2,  # the pipelines read the hidden state two layers from the top
        num_attention_heads=2,
        num_key_value_heads=1,
        rope_parameters=rope,
        bos_token_id=3,
        eos_token_id=2,
        pad_token_id=0,
    )
    return Qwen2_5_VLTextModel(cfg)


def chat_tokenizer(max_length: int = 2048):
    """The WordLevel tokenizer with a minimal chat template (Qwen pipelines format system + user turns)."""
    tok = make_tokenizer(max_length)
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} . {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    return tok


def build_hunyuanvideo15():
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15Pipeline,
        HunyuanVideo15Transformer3DModel,
    )

    c = 4
    torch.manual_seed(0)
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=2 * c + 1,  # latents, condition latents, condition mask
        out_channels=c,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=1,
        num_refiner_layers=1,
        text_embed_dim=16,
        text_embed_2_dim=8,
        image_embed_dim=8,
        rope_axes_dim=(2, 2, 4),
        target_size=64,
        task_type="t2v",
    )
    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo15(latent_channels=c, block_out_channels=(8,) * 5, layers_per_block=1)
    torch.manual_seed(0)
    pipe = HunyuanVideo15Pipeline(
        text_encoder=_qwen25vl_text(16),
        tokenizer=chat_tokenizer(),
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=_t5(8),
        tokenizer_2=make_tokenizer(16),
        guider=ClassifierFreeGuidance(guidance_scale=6.0),
    )
    # shorter text and image token runs than the released 1000 / 256 / 729 keep the test fast
    pipe.tokenizer_max_length, pipe.tokenizer_2_max_length, pipe.vision_num_semantic_tokens = 16, 8, 4
    return _finish(pipe)


def _hunyuan_vae():
    from diffusers import AutoencoderKLHunyuanVideo

    torch.manual_seed(0)
    return AutoencoderKLHunyuanVideo(
        latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=2
    )


def build_kandinsky5():
    from diffusers import FlowMatchEulerDiscreteScheduler, Kandinsky5T2VPipeline, Kandinsky5Transformer3DModel

    torch.manual_seed(0)
    transformer = Kandinsky5Transformer3DModel(
        in_visual_dim=4,
        in_text_dim=16,
        in_text_dim2=8,
        time_dim=16,
        out_visual_dim=4,
        patch_size=(1, 2, 2),
        model_dim=16,
        ff_dim=32,
        num_text_blocks=1,
        num_visual_blocks=1,
        axes_dims=(2, 2, 4),
        visual_cond=True,  # as the released T2V checkpoints: zero condition channels and mask
    )
    torch.manual_seed(0)
    pipe = Kandinsky5T2VPipeline(
        transformer=transformer,
        vae=_hunyuan_vae(),
        text_encoder=_qwen25vl_text(16),
        tokenizer=make_tokenizer(1024),
        text_encoder_2=_clip(8),
        tokenizer_2=make_tokenizer(77),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
    )
    return _finish(pipe)


def build_mochi():
    from diffusers import (
        AutoencoderKLMochi,
        FlowMatchEulerDiscreteScheduler,
        MochiPipeline,
        MochiTransformer3DModel,
    )

    torch.manual_seed(0)
    transformer = MochiTransformer3DModel(
        patch_size=2,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=1,
        pooled_projection_dim=16,
        in_channels=12,
        text_embed_dim=32,
        time_embed_dim=4,
        max_sequence_length=16,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLMochi(
        encoder_block_out_channels=(32, 32, 32, 32),  # its GroupNorms have 32 groups
        decoder_block_out_channels=(32, 32, 32, 32),
        layers_per_block=(1, 1, 1, 1, 1),
        add_attention_block=(False,) * 5,
    )
    torch.manual_seed(0)
    pipe = MochiPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(invert_sigmas=True),
        vae=vae,
        text_encoder=_t5(32),
        tokenizer=make_tokenizer(16),
        transformer=transformer,
        force_zeros_for_empty_prompt=True,
    )
    return _finish(pipe)


def build_skyreels_v2(diffusion_forcing: bool = False):
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SkyReelsV2DiffusionForcingPipeline,
        SkyReelsV2Pipeline,
        SkyReelsV2Transformer3DModel,
        UniPCMultistepScheduler,
    )

    torch.manual_seed(0)
    transformer = SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=32,
        inject_sample_info=diffusion_forcing,  # the fps embedding only the DF pipeline feeds
    )
    vae = _wan_vae()
    if diffusion_forcing:  # its pipeline steps with integer timesteps, which only UniPC accepts
        cls = SkyReelsV2DiffusionForcingPipeline
        scheduler = UniPCMultistepScheduler.from_config(unipc_flow().config, flow_shift=8.0)
    else:
        cls, scheduler = SkyReelsV2Pipeline, FlowMatchEulerDiscreteScheduler(shift=8.0)
    torch.manual_seed(0)
    pipe = cls(
        tokenizer=make_tokenizer(16),
        text_encoder=_umt5(32),
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
    )
    return _finish(pipe)


def _gemma2(hidden: int = 16):
    from transformers import Gemma2Config, Gemma2Model

    cfg = Gemma2Config(
        vocab_size=64,
        hidden_size=hidden,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        pad_token_id=0,
    )
    return Gemma2Model(cfg)


def build_sana_video():
    from diffusers import FlowMatchEulerDiscreteScheduler, SanaVideoPipeline, SanaVideoTransformer3DModel

    torch.manual_seed(0)
    transformer = SanaVideoTransformer3DModel(
        in_channels=16,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=1,
        num_cross_attention_heads=2,
        cross_attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=16,
        sample_size=8,
        rope_max_seq_len=32,
    )
    torch.manual_seed(0)
    gemma = _gemma2(16)
    pipe = SanaVideoPipeline(
        tokenizer=make_tokenizer(512),  # room for the pipeline's long instruction prefix
        text_encoder=gemma,
        vae=_wan_vae(),
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=8.0),
    )
    return _finish(pipe)


BUILDERS = {
    "cogvideox": build_cogvideox,
    "wan": build_wan,
    "ltx": build_ltx,
    "animatediff": build_animatediff,
    "modelscope": build_modelscope,
}

# Families added later, each checked in its own tests/diffusers/test_<family>.py (one-chunk
# equality with the stock pipeline, a long multi-event video, its size / frame constraints).
MORE_BUILDERS = {
    "hunyuanvideo": build_hunyuanvideo,
    "hunyuanvideo15": build_hunyuanvideo15,
    "kandinsky5": build_kandinsky5,
    "mochi": build_mochi,
    "skyreels-v2": build_skyreels_v2,
    "skyreels-v2-df": lambda: build_skyreels_v2(diffusion_forcing=True),
    "sana-video": build_sana_video,
}

# Per family: settings that make a tiny, fast chunk; chunk_length in latent frames.
TINY_SETTINGS = {
    "cogvideox": {"height": 32, "width": 32, "model_options": {"max_sequence_length": 16}},
    "wan": {"height": 16, "width": 16, "model_options": {"native_frames": 9, "max_sequence_length": 16}},
    "ltx": {"height": 32, "width": 32, "model_options": {"native_frames": 9, "max_sequence_length": 16}},
    "animatediff": {"height": 16, "width": 16, "model_options": {"native_frames": 4, "stride": 2}},
    "modelscope": {"height": 16, "width": 16, "model_options": {"native_frames": 4, "stride": 2}},
    "hunyuanvideo": {
        "height": 16,
        "width": 16,
        "model_options": {"native_frames": 9, "max_sequence_length": 16},
    },
    "mochi": {"height": 16, "width": 16, "model_options": {"native_frames": 13, "max_sequence_length": 16}},
    "skyreels-v2": {
        "height": 16,
        "width": 16,
        "model_options": {"native_frames": 9, "max_sequence_length": 16},
    },
    "skyreels-v2-df": {
        "height": 16,
        "width": 16,
        "model_options": {"native_frames": 9, "max_sequence_length": 16},
    },
    "sana-video": {
        "height": 32,
        "width": 32,
        "model_options": {"native_frames": 9, "max_sequence_length": 16},
    },
    "hunyuanvideo15": {"height": 32, "width": 32, "model_options": {"native_frames": 9}},
    "kandinsky5": {
        "height": 32,
        "width": 32,
        "model_options": {"native_frames": 9, "max_sequence_length": 16},
    },
}

# Variants that are not separate families: CogVideoX 5B-style RoPE, Wan 2.2 A14B-style two experts,
# Wan 2.2 TI2V-5B-style per-token timesteps, the UniPC scheduler Wan checkpoints ship, DDIM with x0
# clipping / dynamic thresholding.
VARIANTS = {
    "cogvideox-rope": (lambda: build_cogvideox(rotary=True), "cogvideox"),
    "wan-experts": (lambda: build_wan(two_experts=True), "wan"),
    "wan-unipc": (lambda: build_wan(unipc=True), "wan"),
    "wan-ti2v": (lambda: build_wan(expand_timesteps=True), "wan"),  # Wan 2.2 TI2V: per-token timesteps
    "wan-experts-unipc": (lambda: build_wan(two_experts=True, unipc=True), "wan"),
    "animatediff-clip": (lambda: build_animatediff(clip_sample=True), "animatediff"),
    "animatediff-unipc": (lambda: build_animatediff("UniPCMultistepScheduler"), "animatediff"),
    "animatediff-dpm": (lambda: build_animatediff("DPMSolverMultistepScheduler"), "animatediff"),
    "animatediff-threshold": (
        lambda: build_animatediff(thresholding=True, sample_max_value=3.0),
        "animatediff",
    ),
}

_CACHE: dict[str, object] = {}


def tiny_pipe(family: str):
    """A fresh tiny pipeline (cached build, deep-copied so tests cannot leak state)."""
    if family not in _CACHE:
        builders = {**BUILDERS, **MORE_BUILDERS, **{k: v[0] for k, v in VARIANTS.items()}}
        _CACHE[family] = builders[family]()
    return copy.deepcopy(_CACHE[family])


def one_event(prompt: str, frames: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(prompt=prompt, frames=frames, seconds=None)


def make_plan(backend, frames_per_event, prompts=None, global_prompt="a red astronaut", stride=None):
    """A timeline of events with these video-frame counts, cut with the backend's chunk length."""
    from syncos.timeline import plan_timeline

    prompts = prompts or ["walks through puddle", "watches fireworks at night", "sits on beach", "runs"]
    events = [one_event(prompts[i % len(prompts)], n) for i, n in enumerate(frames_per_event)]
    return plan_timeline(
        global_prompt,
        events,
        chunk_length=backend.chunk_length,
        stride=stride or backend.default_stride,
        fps=backend.fps,
        latent_frames=backend.latent_frames,
        video_frames=backend.video_frames,
    )


def load(family: str, **overrides):
    """The adapter of a fresh tiny pipeline. A dtype, and vae_slicing for image VAEs, are set on the
    pipeline first, as a user does before handing it over (syncos refuses to change a handed-in
    pipeline); vae_slicing for a video VAE goes through, to be refused."""
    from syncos.backends.diffusers import load_diffusers_backend
    from syncos.backends.diffusers.loader import DTYPES

    base = VARIANTS[family][1] if family in VARIANTS else family
    settings = {**TINY_SETTINGS[base], **overrides}
    pipe = tiny_pipe(family)
    if settings.get("dtype") is not None:
        pipe.to(dtype=DTYPES[settings.pop("dtype")])
    if settings.get("vae_slicing") and base in ("animatediff", "modelscope"):
        settings.pop("vae_slicing")
        pipe.vae.enable_slicing()
    return load_diffusers_backend(None, pipe=pipe, **settings)


# ---- checks shared by the per-family test files ----------------------------------------------------


def one_chunk(backend, steps: int, guidance: float, seed: int = 0):
    """``codenoise`` over exactly one native chunk: (latent, the noise it started from, its prompt)."""
    from syncos.samplers import SamplerOptions, sample

    plan = make_plan(backend, [backend.video_frames(backend.chunk_length)])
    assert plan.num_chunks == 1 and plan.latent_frames == backend.chunk_length
    noise = torch.randn(
        backend.latent_shape(plan.latent_frames), generator=torch.Generator().manual_seed(seed)
    )
    opts = SamplerOptions(steps=steps, guidance_scale=guidance)
    res = sample("codenoise", backend, plan, opts, seed=seed)
    return res.latent.float().cpu(), noise, plan.prompts[0]


def relative_error(mine: torch.Tensor, ref: torch.Tensor) -> float:
    assert mine.shape == ref.shape, (mine.shape, ref.shape)
    return ((mine - ref).abs().max() / ref.abs().max()).item()


def long_video(backend, steps: int = 2, guidance: float = 3.0):
    """Two events over several chunks through codenoise and SynCoS, then the tiled decoder."""
    import numpy as np

    from syncos.samplers import SynCoSOptions, sample

    native = backend.video_frames(backend.chunk_length)
    plan = make_plan(backend, [native * 3 // 2, native * 3 // 2])
    assert plan.num_chunks >= 3 and len(set(plan.chunk_prompts)) == 2
    opts = SynCoSOptions(steps=steps, guidance_scale=guidance, micro_batch=8, iterations=1, t_min=-1.0)
    ref = None
    for method in ("codenoise", "syncos"):
        res = sample(method, backend, plan, opts, seed=1)
        assert tuple(res.latent.shape) == tuple(backend.latent_shape(plan.latent_frames)), method
        assert torch.isfinite(res.latent).all(), method
        ref = res.latent if ref is None else ref
    assert res.nfe.get("stage2", 0) > 0 and not torch.allclose(res.latent, ref)
    frames = list(backend.decode(res.latent))
    assert len(frames) == plan.video_frames == backend.video_frames(plan.latent_frames)
    assert all(f.dtype == np.uint8 and f.shape == (backend.height, backend.width, 3) for f in frames)
    return res


def decode_matches_stock(backend, stock_decode) -> None:
    """One decode tile of the adapter == the pipeline's own decoding (stock_decode: latent batch -> video)."""
    import numpy as np

    b = load(backend.name, model_options={**backend.options, "decode_tile": 64})
    lat = torch.randn(b.latent_shape(b.chunk_length), generator=torch.Generator().manual_seed(0)) * 0.5
    frames = np.stack(list(b.decode(lat)))
    with torch.no_grad():
        video = stock_decode(b.pipe, lat[None])
    ref = (
        (b.pipe.video_processor.postprocess_video(video, output_type="np")[0] * 255).round().astype(np.uint8)
    )
    assert frames.shape == ref.shape
    assert np.abs(frames.astype(int) - ref.astype(int)).max() <= 1


def folder_round_trip(family: str, folder) -> None:
    """save_pretrained, then load by path: the loader finds the family from model_index.json."""
    from syncos.backends import load_backend

    tiny_pipe(family).save_pretrained(folder)
    b, ref = load_backend(str(folder), **TINY_SETTINGS[family]), load(family)
    assert type(b) is type(ref)
    x, t = torch.randn(2, *b.latent_shape(b.chunk_length)), torch.tensor([900.0, 300.0])
    assert torch.allclose(
        b.forward(x, t, b.encode(["a cat", ""])), ref.forward(x, t, ref.encode(["a cat", ""])), atol=1e-5
    )
