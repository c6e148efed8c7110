namespace Raft.Model;

/// <summary>
/// A config.json key whose value changes the computation in a way the engine (or one of its implementations: the GPU
/// model, the ONNX exporter) does not compute, or a key it does not know: refused by name rather than ignored. The CLI
/// reports it with exit code 2 (it is an <see cref="ArgumentException"/>, bad input). The message names the key, the value and
/// the file (when the config was read from one).
/// </summary>
public sealed class UnsupportedConfigException : ArgumentException
{
    /// <summary>A refusal of <paramref name="key"/> = <paramref name="value"/> (JSON text) read from <paramref name="source"/>.</summary>
    public UnsupportedConfigException(string key, string value, string? source, string reason)
        : this(key, value, source, reason, "config.json")
    {
    }

    /// <summary>As the other constructor, for a key of another JSON file (e.g. <c>adapter_config.json</c>).</summary>
    public UnsupportedConfigException(string key, string value, string? source, string reason, string fileKind)
        : base($"{fileKind} key {key} = {value}{(source is null ? "" : $" in {source}")}: {reason}")
    {
        Key = key;
        Value = value;
        ConfigFile = source;
    }

    /// <summary>The key, dotted for a nested one (e.g. <c>rope_scaling.rope_type</c>).</summary>
    public string Key { get; }
    /// <summary>The value as JSON text.</summary>
    public string Value { get; }
    /// <summary>The config file, or null when the config was built in code.</summary>
    public string? ConfigFile { get; }
}
