using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Raft.Model;

namespace Raft.Pipeline.Data;

/// <summary>Writes JSONL files atomically (a temporary file renamed over the destination): one JSON object a line.</summary>
public static class JsonlWriter
{
    /// <summary>
    /// The default serializer options: snake_case property names, compact, non-ASCII text kept readable, null
    /// properties omitted.
    /// </summary>
    public static JsonSerializerOptions DefaultOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = false,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Writes each item of <paramref name="items"/> serialised as one line of <paramref name="path"/>.</summary>
    public static void Write<T>(string path, IEnumerable<T> items, JsonSerializerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(items);
        AtomicFile.Write(path, stream => WriteLines(stream, items, options));
    }

    /// <summary>Writes each item of <paramref name="items"/> serialised as one line of <paramref name="stream"/>.</summary>
    public static void WriteLines<T>(Stream stream, IEnumerable<T> items, JsonSerializerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(items);
        var opts = options ?? DefaultOptions;
        foreach (var item in items)
        {
            stream.Write(JsonSerializer.SerializeToUtf8Bytes(item, opts));
            stream.WriteByte((byte)'\n');
        }
    }

    /// <summary>Writes each JSON object of <paramref name="objects"/> as one line of <paramref name="path"/>.</summary>
    public static void WriteObjects(string path, IEnumerable<JsonObject> objects)
    {
        ArgumentNullException.ThrowIfNull(objects);
        var opts = new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        AtomicFile.Write(path, stream =>
        {
            foreach (var o in objects)
            {
                ArgumentNullException.ThrowIfNull(o, nameof(objects));
                stream.Write(System.Text.Encoding.UTF8.GetBytes(o.ToJsonString(opts)));
                stream.WriteByte((byte)'\n');
            }
        });
    }

    /// <summary>
    /// Writes examples as <c>{"id": ..., "prompt": ..., "answer": ...}</c> lines, readable again by
    /// <see cref="JsonlDataset"/>.
    /// </summary>
    public static void WriteExamples(string path, IEnumerable<DomainExample> examples)
    {
        ArgumentNullException.ThrowIfNull(examples);
        WriteObjects(path, examples.Select(e => new JsonObject { ["id"] = e.Id, ["prompt"] = e.Prompt, ["answer"] = e.Answer }));
    }
}
