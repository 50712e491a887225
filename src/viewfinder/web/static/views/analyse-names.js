// Readable names for the analysis API's identifiers (operation types, targets, seed 003's
// categories). An identifier this page does not know is shown as it is.

export const OPERATION_NAMES = {
  detect_bounding_box: "Bounding box",
  embed_clip_vit_b_32: "CLIP embedding (ViT-B/32)",
  embed_dino_v2: "DINOv2 embedding",
  embed_dino_v3: "DINOv3 embedding",
  classify: "Collection classifier",
  describe_image: "Caption",
  seed003: "Style, mood and a prompt",
};

export const TARGET_NAMES = {
  whole_image: "Whole image",
  prominent_person: "Prominent person",
  prominent_face: "Prominent face",
};

// The model behind each embedding, as the operation's description names it.
export const EMBEDDING_MODELS = {
  embed_clip_vit_b_32: "CLIP ViT-B/32",
  embed_dino_v2: "DINOv2",
  embed_dino_v3: "DINOv3",
};

export function operationName(type) {
  return OPERATION_NAMES[type] || type;
}

export function targetName(target) {
  return TARGET_NAMES[target] || target;
}

/** "color_palette" → "Color palette". */
export function humanise(identifier) {
  const text = String(identifier).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
