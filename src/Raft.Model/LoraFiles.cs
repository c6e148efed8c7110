using System.Text.Json;
using System.Text.Json.Nodes;

namespace Raft.Model;

/// <summary>
/// PEFT's on-disk form of LoRA adapters, so that <c>peft.PeftModel.from_pretrained(base, dir)</c> (and every tool that
/// reads PEFT's files) loads what the engine trains: <c>adapter_config.json</c> (<c>peft_type: "LORA"</c>, <c>r</c>,
/// <c>lora_alpha</c>, <c>lora_dropout</c>, <c>target_modules</c>, <c>base_model_name_or_path</c>, <c>bias: "none"</c>,
/// <c>task_type: "CAUSAL_LM"</c>, <c>fan_in_fan_out: false</c>, …) and <c>adapter_model.safetensors</c> with PEFT's
/// tensor names (<c>base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight</c> [r, in],
/// <c>….lora_B.weight</c> [out, r]). Reading refuses by name (<see cref="UnsupportedConfigException"/>) every PEFT
/// option the engine does not compute: rsLoRA, DoRA, LoRA biases, modules_to_save, rank/alpha patterns, layer selection,
/// fan_in_fan_out, other init schemes, and any key it does not know.
/// </summary>
public static class LoraFiles
{
    /// <summary>The adapter's configuration file.</summary>
    public const string ConfigFile = "adapter_config.json";
    /// <summary>The adapter's tensors.</summary>
    public const string WeightsFile = "adapter_model.safetensors";
    private const string Kind = "adapter_config.json";

    /// <summary>Whether <paramref name="directory"/> holds an adapter (its config file).</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, ConfigFile));

    /// <summary>The config JSON PEFT writes for these hyper-parameters (its keys, with the defaults it writes).</summary>
    public static JsonObject ConfigJson(LoraConfig config, string? baseModelNameOrPath)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var targets = new JsonArray();
        foreach (var t in config.TargetModules) targets.Add(t);
        return new JsonObject
        {
            ["alpha_pattern"] = new JsonObject(),
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = baseModelNameOrPath,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layer_replication"] = null,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["loftq_config"] = new JsonObject(),
            ["lora_alpha"] = config.Alpha,
            ["lora_bias"] = false,
            ["lora_dropout"] = config.Dropout,
            ["megatron_config"] = null,
            ["megatron_core"] = "megatron.core",
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = config.Rank,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = targets,
            ["task_type"] = "CAUSAL_LM",
            ["use_dora"] = false,
            ["use_rslora"] = false,
        };
    }

    /// <summary>Writes both files into <paramref name="directory"/> (created if needed), each atomically.</summary>
    public static void Save(string directory, LoraAdapters adapters, string? baseModelNameOrPath)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(adapters);
        Directory.CreateDirectory(directory);
        var json = ConfigJson(adapters.Config, baseModelNameOrPath).ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        SafeTensorsWriter.Write(Path.Combine(directory, WeightsFile), adapters.Parameters.Tensors, SafeTensorDType.F32,
            new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteText(Path.Combine(directory, ConfigFile), json + "\n");
    }

    /// <summary>Reads and checks an adapter_config.json: the hyper-parameters and base_model_name_or_path.</summary>
    public static (LoraConfig Config, string? BaseModel) ReadConfig(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"adapter config {path} does not exist.", path);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new UnsupportedConfigException("(root)", "?", path, "must be a JSON object.", Kind);
        }
        catch (JsonException e)
        {
            throw new UnsupportedConfigException("(root)", "?", path, $"is not valid JSON ({e.Message}).", Kind);
        }
        string Text(JsonNode? n) => n is null ? "null" : n.ToJsonString();
        UnsupportedConfigException Refuse(string key, string reason) => new(key, Text(root[key]), path, reason, Kind);
        bool IsNullOrEmpty(JsonNode? n) => n is null || n is JsonObject { Count: 0 } || n is JsonArray { Count: 0 };
        bool IsFalse(JsonNode? n) => n is null || (n is JsonValue v && v.TryGetValue<bool>(out var b) && !b);

        foreach (var (key, node) in root)
        {
            switch (key)
            {
                case "peft_type":
                    if (node?.GetValueKind() != JsonValueKind.String || node.GetValue<string>() != "LORA")
                        throw Refuse(key, "only \"LORA\" adapters are read.");
                    break;
                case "task_type":
                    if (node is not null && (node.GetValueKind() != JsonValueKind.String || node.GetValue<string>() != "CAUSAL_LM"))
                        throw Refuse(key, "the engine trains causal language models: \"CAUSAL_LM\" only.");
                    break;
                case "bias":
                    if (node?.GetValueKind() != JsonValueKind.String || node.GetValue<string>() != "none")
                        throw Refuse(key, "trained biases are not supported: \"none\" only.");
                    break;
                case "init_lora_weights":
                    if (node is not JsonValue iv || !iv.TryGetValue<bool>(out var init) || !init)
                        throw Refuse(key, "only PEFT's default initialisation (true: Kaiming-uniform A, zero B) is supported.");
                    break;
                case "fan_in_fan_out": case "use_rslora": case "use_dora": case "lora_bias": case "use_qalora":
                    if (!IsFalse(node)) throw Refuse(key, "not supported (must be false).");
                    break;
                case "modules_to_save": case "rank_pattern": case "alpha_pattern": case "layers_to_transform": case "layers_pattern":
                case "layer_replication": case "exclude_modules": case "loftq_config": case "megatron_config": case "eva_config":
                case "corda_config": case "trainable_token_indices": case "target_parameters": case "lora_ga_config": case "arrow_config":
                    if (!IsNullOrEmpty(node)) throw Refuse(key, "not supported (must be null or empty).");
                    break;
                case "r": case "lora_alpha": case "lora_dropout": case "target_modules":
                case "base_model_name_or_path": case "revision": case "inference_mode": case "auto_mapping": case "megatron_core":
                case "peft_version": case "qalora_group_size":
                    break;   // read below, or metadata that does not change the math
                default:
                    throw Refuse(key, "not a LoRA option this engine knows; it may change the math, so the adapter is refused.");
            }
        }
        if (root["peft_type"] is null) throw Refuse("peft_type", "is required (\"LORA\").");
        int rank = root["r"] is JsonValue rv && rv.TryGetValue<int>(out var r) ? r : throw Refuse("r", "must be an integer ≥ 1.");
        double alpha = root["lora_alpha"] is JsonValue av && av.TryGetValue<double>(out var a) ? a : throw Refuse("lora_alpha", "must be a number > 0.");
        double dropout = root["lora_dropout"] is null ? 0 : root["lora_dropout"] is JsonValue dv && dv.TryGetValue<double>(out var p) ? p
            : throw Refuse("lora_dropout", "must be a number in [0, 1).");
        IReadOnlyList<string> targets = root["target_modules"] switch
        {
            JsonArray arr when arr.All(x => x?.GetValueKind() == JsonValueKind.String) => arr.Select(x => x!.GetValue<string>()).ToList(),
            JsonValue s when s.GetValueKind() == JsonValueKind.String && s.GetValue<string>() == "all-linear" => LoraConfig.ModuleNames,
            _ => throw Refuse("target_modules", "must be a list of module names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) or \"all-linear\"; regular expressions are not supported."),
        };
        // PEFT keeps target_modules as a set; the engine's order is LoraTarget's
        targets = LoraConfig.ModuleNames.Where(targets.Contains).Concat(targets.Where(t => !LoraConfig.ModuleNames.Contains(t))).ToList();
        var config = new LoraConfig { Rank = rank, Alpha = alpha, Dropout = dropout, TargetModules = targets };
        try { config.Validate(); }
        catch (ArgumentException e) { throw new UnsupportedConfigException(e.ParamName ?? "r", Text(root[e.ParamName ?? "r"]), path, e.Message, Kind); }
        string? baseModel = root["base_model_name_or_path"] is JsonValue bv && bv.TryGetValue<string>(out var bs) ? bs : null;
        return (config, baseModel);
    }

    /// <summary>Reads an adapter directory for a model of <paramref name="layout"/> (every tensor checked by name and shape).</summary>
    public static LoraAdapters Load(string directory, DecoderLayout layout)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(layout);
        var (config, _) = ReadConfig(Path.Combine(directory, ConfigFile));
        string weights = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weights))
            throw new FileNotFoundException($"adapter {directory} has no {WeightsFile} (adapter_model.bin, PyTorch's pickle format, is not read).", weights);
        var set = SafeTensorsFile.ReadAll(weights);
        try { return new LoraAdapters(layout, config, set); }
        catch (ArgumentException e) { throw new ArgumentException($"{weights}: {e.Message}", nameof(directory), e); }
    }
}
