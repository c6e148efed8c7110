using System.Globalization;
using System.Text.Json;

namespace Raft.Pipeline.Data;

/// <summary>
/// One parsed JSONL record together with where it came from, with field accessors whose errors are
/// <see cref="DataFormatException"/>s naming the file, the line, the field and the offending value.
/// </summary>
public readonly struct JsonlLine
{
    /// <summary>Wraps the object <paramref name="root"/> read from <paramref name="path"/> line <paramref name="line"/>.</summary>
    public JsonlLine(string path, int line, JsonElement root)
    {
        Path = path;
        Line = line;
        Root = root;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The 1-based line number.</summary>
    public int Line { get; }

    /// <summary>The record (a JSON object).</summary>
    public JsonElement Root { get; }

    /// <summary>The default id of the record: <c>&lt;file name&gt;:&lt;line&gt;</c>.</summary>
    public string DefaultId => $"{System.IO.Path.GetFileName(Path)}:{Line.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>A <see cref="DataFormatException"/> for this line.</summary>
    public DataFormatException Error(string problem, Exception? inner = null) => new(Path, Line, problem, inner);

    /// <summary>True when the record has a property <paramref name="name"/> that is not JSON null.</summary>
    public bool Has(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    /// <summary>The non-empty string field <paramref name="name"/>; throws when missing, not a string or empty.</summary>
    public string RequiredString(string name) => RequiredString(Root, name, name);

    /// <summary>The string field <paramref name="name"/>, or null when absent or JSON null; throws when not a string.</summary>
    public string? OptionalString(string name, bool allowEmpty = false)
    {
        if (!Root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.String)
            throw Error($"field \"{name}\" must be a string, got {Describe(v)}");
        string s = v.GetString()!;
        if (!allowEmpty && string.IsNullOrWhiteSpace(s)) throw Error($"field \"{name}\" is empty");
        return s;
    }

    /// <summary>The record's id: field <c>id</c> (a non-empty string or an integer) or <see cref="DefaultId"/>.</summary>
    public string Id()
    {
        if (!Root.TryGetProperty("id", out var v) || v.ValueKind == JsonValueKind.Null) return DefaultId;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n)) return n.ToString(CultureInfo.InvariantCulture);
        if (v.ValueKind != JsonValueKind.String) throw Error($"field \"id\" must be a string or an integer, got {Describe(v)}");
        string s = v.GetString()!;
        if (string.IsNullOrWhiteSpace(s)) throw Error("field \"id\" is empty");
        return s;
    }

    /// <summary>
    /// The non-empty string property <paramref name="name"/> of <paramref name="obj"/>; <paramref name="label"/>
    /// is how the field is named in messages (e.g. <c>messages[2].content</c>).
    /// </summary>
    public string RequiredString(JsonElement obj, string name, string label)
    {
        if (obj.ValueKind != JsonValueKind.Object) throw Error($"\"{label}\" expected inside an object, got {Describe(obj)}");
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            throw Error($"field \"{label}\" is missing");
        if (v.ValueKind != JsonValueKind.String)
            throw Error($"field \"{label}\" must be a string, got {Describe(v)}");
        string s = v.GetString()!;
        if (string.IsNullOrWhiteSpace(s)) throw Error($"field \"{label}\" is empty");
        return s;
    }

    /// <summary>A short description of a JSON value for error messages: its kind and (abbreviated) raw text.</summary>
    public static string Describe(JsonElement v)
    {
        string raw = v.GetRawText();
        if (raw.Length > 60) raw = raw[..57] + "...";
        string kind = v.ValueKind switch
        {
            JsonValueKind.Object => "object",
            JsonValueKind.Array => "array",
            JsonValueKind.String => "string",
            JsonValueKind.Number => "number",
            JsonValueKind.True or JsonValueKind.False => "boolean",
            JsonValueKind.Null => "null",
            _ => v.ValueKind.ToString(),
        };
        return $"{kind} {raw}";
    }
}
