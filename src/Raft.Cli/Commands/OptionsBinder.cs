using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Raft.Kernels;

namespace Raft.Cli.Commands;

/// <summary>
/// Turns every JSON property of an options record (<see cref="JsonPropertyNameAttribute"/>) into a flag of the same name
/// (<c>snake_case</c> → <c>--kebab-case</c>), so that a config file and the command line say the same things: the record's
/// defaults, overridden by the <c>--config</c> file, overridden by the flags given.
/// </summary>
internal sealed class OptionsBinder<T> where T : class
{
    private readonly List<(Option Option, string Key, Type Type)> _flags = [];
    private readonly JsonSerializerOptions _json;
    private readonly IReadOnlySet<string> _inapplicable;
    private readonly string _inapplicableWhy;

    /// <param name="json">The record's serializer options.</param>
    /// <param name="describe">The help text of a key.</param>
    /// <param name="exclude">Keys that get no flag.</param>
    public OptionsBinder(JsonSerializerOptions json, Func<string, string?> describe, params string[] exclude)
        : this(json, describe, exclude, [], "", null) { }

    /// <param name="json">The record's serializer options.</param>
    /// <param name="describe">The help text of a key.</param>
    /// <param name="exclude">Keys that get no flag.</param>
    /// <param name="inapplicable">Keys (among <paramref name="exclude"/>) the command does not use: a <c>--config</c> file may
    /// hold them only at their default value (as the run folder's own <c>config.json</c> does), any other value is refused
    /// by name, as their flags are (e.g. raft sft and the RAFT-only <c>top_k</c>).</param>
    /// <param name="inapplicableWhy">Why, for that message: e.g. "applies to raft train only".</param>
    /// <param name="helpName">The value placeholder of a key's flag in --help (e.g. "fp32|bf16|fp16"), or null for its type's
    /// (N, true|false, A,B, an enum's values, the device's auto|cpu|cuda|cuda-c).</param>
    public OptionsBinder(JsonSerializerOptions json, Func<string, string?> describe, string[] exclude, string[] inapplicable, string inapplicableWhy,
        Func<string, string?>? helpName)
    {
        _json = json;
        _inapplicable = new HashSet<string>(inapplicable, StringComparer.Ordinal);
        _inapplicableWhy = inapplicableWhy;
        foreach (var p in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetCustomAttribute<JsonPropertyNameAttribute>() is not { } attr || exclude.Contains(attr.Name)) continue;
            var type = Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType;
            string flag = "--" + attr.Name.Replace('_', '-');
            Option option;
            // A list of strings (file names) is a repeatable flag: --eval-set a.jsonl --eval-set b.jsonl.
            if (type == typeof(string[]))
                option = new Option<string[]>(flag) { Description = describe(attr.Name), HelpName = helpName?.Invoke(attr.Name) ?? HelpFor(type), AllowMultipleArgumentsPerToken = false, Arity = ArgumentArity.OneOrMore };
            else
            {
                var single = new Option<string?>(flag) { Description = describe(attr.Name), HelpName = helpName?.Invoke(attr.Name) ?? HelpFor(type) };
                // A bare boolean flag means true (--shard-optimizer is --shard-optimizer true).
                if (type == typeof(bool)) single.Arity = ArgumentArity.ZeroOrOne;
                option = single;
            }
            _flags.Add((option, attr.Name, type));
        }
    }

    private static string HelpFor(Type t) =>
        t == typeof(bool) ? "true|false" :
        t == typeof(ComputeDevice) ? DeviceOption.HelpName :
        t == typeof(DistillLossKind) ? DistillLossKinds.HelpName :
        t.IsEnum ? string.Join("|", Enum.GetNames(t)) :
        t == typeof(double[]) ? "A,B" :
        t == typeof(string[]) ? "FILE" :
        t == typeof(string) ? "TEXT" : "N";

    public IEnumerable<Option> Options => _flags.Select(f => (Option)f.Option);

    /// <summary>The keys the last <see cref="Bind"/> was given, by the <c>--config</c> file or a flag (not the defaults).</summary>
    public IReadOnlySet<string> GivenKeys => _given;
    private readonly HashSet<string> _given = new(StringComparer.Ordinal);

    /// <summary>defaults ← config file ← flags (a boolean flag without a value is true); every problem names the flag or the file.</summary>
    public T Bind(ParseResult parse, T defaults, string? configPath)
    {
        _given.Clear();
        var node = JsonSerializer.SerializeToNode(defaults, _json)!.AsObject();
        if (configPath is not null)
        {
            CliChecks.CheckInputFile("--config", configPath);
            JsonObject file;
            string text = File.ReadAllText(configPath);
            try { RefuseDuplicateKeys(configPath, text); }
            catch (JsonException e) { throw new UsageException($"--config {configPath}: not a JSON object ({e.Message})."); }
            try { file = JsonNode.Parse(text)?.AsObject() ?? throw new UsageException($"--config {configPath}: the file holds null."); }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                throw new UsageException($"--config {configPath}: not a JSON object ({e.Message}).");
            }
            foreach (var (key, value) in file)
            {
                if (!node.ContainsKey(key)) throw new UsageException($"--config {configPath}: unknown key \"{key}\"; known: {string.Join(", ", node.Select(kv => kv.Key))}.");
                if (_inapplicable.Contains(key) && !SameValue(key, value, node[key]))
                    throw new UsageException($"--config {configPath}: key \"{key}\" = {value?.ToJsonString() ?? "null"} {_inapplicableWhy}; " +
                                             $"remove it (its default, {node[key]?.ToJsonString() ?? "null"}, is accepted).");
                node[key] = value?.DeepClone();
                if (value is not null) _given.Add(key);
            }
        }
        foreach (var (option, key, type) in _flags)
        {
            if (!CliChecks.IsGiven(parse, option)) continue;
            if (option is Option<string[]> list)
            {
                // "none" alone clears the list (the null of a --config file)
                string[] values = parse.GetValue(list) ?? [];
                node[key] = values is ["none"] ? null : new JsonArray(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
                if (node[key] is not null) _given.Add(key);
                continue;
            }
            string text = parse.GetValue((Option<string?>)option) ?? "";
            node[key] = Parse(option.Name, text, type);
            if (node[key] is not null) _given.Add(key);
        }
        // A device is spelled "auto", "cuda-c", …: checked here so that a bad one, from the file or a flag, is reported
        // with the flag, as the command line says it (the converter's JsonException would name neither).
        foreach (var (option, key, type) in _flags)
        {
            if (type != typeof(ComputeDevice)) continue;
            var value = node[key];
            string? text = value is null ? null : value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : value.ToJsonString();
            if (!ComputeDevices.TryParse(text, out _)) throw new UsageException(DeviceOption.Invalid(option.Name, text));
        }
        try { return node.Deserialize<T>(_json) ?? throw new UsageException("the options resolved to null."); }
        catch (JsonException e)
        {
            // The error's line and byte refer to the merged options, not to any file the user wrote: named by key instead.
            string key = e.Path is { Length: > 2 } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : "";
            string problem = e.Message.Split(" Path: ")[0];
            var flag = _flags.FirstOrDefault(f => f.Key == key);
            string source = flag.Option is not null && CliChecks.IsGiven(parse, flag.Option) ? flag.Option.Name
                : configPath is not null ? $"--config {configPath}: key \"{key}\""
                : $"option \"{key}\"";
            throw new UsageException($"{source} = {node[key]?.ToJsonString() ?? "null"}: {problem}");
        }
    }

    /// <summary>
    /// Whether two JSON values of <paramref name="key"/> mean the same option value (1 and 1.0 do; "ForwardKL" and
    /// "forward-kl" do), read as the record's property, with its own converter.
    /// </summary>
    private bool SameValue(string key, JsonNode? a, JsonNode? b)
    {
        string Read(JsonNode? v)
        {
            var record = new JsonObject { [key] = v?.DeepClone() }.Deserialize<T>(_json);
            return JsonSerializer.SerializeToNode(record, _json)![key]?.ToJsonString() ?? "null";
        }
        try { return Read(a) == Read(b); }
        catch (JsonException) { return false; }
    }

    /// <summary>A key written twice in one object of <paramref name="text"/> is refused by name (JSON readers disagree on which wins).</summary>
    private static void RefuseDuplicateKeys(string path, string text)
    {
        using var doc = JsonDocument.Parse(text);
        Walk(doc.RootElement, "");

        void Walk(JsonElement e, string where)
        {
            if (e.ValueKind == JsonValueKind.Array) { int i = 0; foreach (var x in e.EnumerateArray()) Walk(x, $"{where}[{i++}]"); return; }
            if (e.ValueKind != JsonValueKind.Object) return;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in e.EnumerateObject())
            {
                string name = where.Length == 0 ? property.Name : $"{where}.{property.Name}";
                if (!seen.Add(property.Name)) throw new UsageException($"--config {path}: key \"{name}\" is written twice; keep one.");
                Walk(property.Value, name);
            }
        }
    }

    private static JsonNode? Parse(string flag, string text, Type type)
    {
        var ci = CultureInfo.InvariantCulture;
        try
        {
            if (type == typeof(int)) return int.Parse(text, ci);
            if (type == typeof(long)) return long.Parse(text, ci);
            // NaN and ±Infinity parse, but no option takes them (and JSON cannot hold them): named here, with the flag.
            if (type == typeof(double)) return Finite(flag, text, double.Parse(text, NumberStyles.Float, ci));
            if (type == typeof(float)) return (float)Finite(flag, text, float.Parse(text, NumberStyles.Float, ci));
            if (type == typeof(bool)) return text.Length == 0 || bool.Parse(text);
            // "none" is null; an empty value stays empty, as "key": "" in a --config file does (one meaning for both).
            if (type == typeof(string)) return text == "none" ? null : text;
            if (type == typeof(ComputeDevice)) return text; // checked, with the other sources, in Bind
            if (type == typeof(DistillLossKind))
                return DistillLossKinds.TryParse(text, out var kind) ? DistillLossKinds.Name(kind) : throw new FormatException($"must be {DistillLossKinds.Choices}");
            if (type == typeof(double[]))
                return text is "" or "none" ? null : new JsonArray(text.Split(',').Select(s => (JsonNode)Finite(flag, text, double.Parse(s.Trim(), NumberStyles.Float, ci))).ToArray());
            if (type.IsEnum)
            {
                var name = Enum.GetNames(type).FirstOrDefault(n => string.Equals(n, text.Replace("-", ""), StringComparison.OrdinalIgnoreCase))
                           ?? throw new FormatException($"expected one of {string.Join(", ", Enum.GetNames(type))}");
                return name;
            }
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new UsageException($"{flag} '{text}': {e.Message}");
        }
        throw new UsageException($"{flag}: options of type {type.Name} are not supported.");
    }

    private static double Finite(string flag, string text, double value) =>
        double.IsFinite(value) ? value : throw new UsageException($"{flag} '{text}': must be a finite number.");

    /// <summary>
    /// An options record's <see cref="ArgumentException"/> as a usage error that names the flag of its key (the record
    /// names the JSON key, e.g. <c>rollouts_per_prompt</c>) without .NET's "(Parameter '…')" suffix.
    /// </summary>
    public UsageException Usage(ArgumentException e)
    {
        string message = CliErrors.WithoutParameter(e);
        var flag = _flags.FirstOrDefault(f => f.Key == e.ParamName).Option;
        return new UsageException(flag is null ? message : $"{flag.Name}: {message}");
    }
}
