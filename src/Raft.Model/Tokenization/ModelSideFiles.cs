namespace Raft.Model.Tokenization;

/// <summary>
/// The files of a Hugging Face model folder that are not weights but say how the model is used: the tokenizer
/// (<c>tokenizer.json</c>, <c>tokenizer_config.json</c>, <c>tokenizer.model</c>, <c>vocab.json</c>/<c>merges.txt</c>,
/// <c>*.tiktoken</c>, <c>special_tokens_map.json</c>, <c>added_tokens.json</c>), the chat template
/// (<c>chat_template.jinja</c>, <c>chat_template.json</c>) and <c>generation_config.json</c>. A checkpoint the engine
/// writes, and an export of one, carry them, so the folder can be used exactly as the one it came from.
/// </summary>
public static class ModelSideFiles
{
    /// <summary>Whether a file of this name travels with the model.</summary>
    public static bool Travels(string fileName) =>
        fileName.StartsWith("tokenizer", StringComparison.Ordinal)
        || fileName.EndsWith(".tiktoken", StringComparison.Ordinal)
        || fileName is "vocab.json" or "merges.txt" or "special_tokens_map.json" or "added_tokens.json"
            or "chat_template.jinja" or "chat_template.json" or "generation_config.json";

    /// <summary>The travelling files of <paramref name="fromDirectory"/> (top level only), sorted by name.</summary>
    public static IReadOnlyList<string> In(string fromDirectory) =>
        Directory.GetFiles(fromDirectory).Where(f => Travels(Path.GetFileName(f))).Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// Copies the travelling files of <paramref name="fromDirectory"/> into <paramref name="toDirectory"/>, each
    /// written atomically; returns their names. The two folders must differ.
    /// </summary>
    public static IReadOnlyList<string> Copy(string fromDirectory, string toDirectory)
    {
        ArgumentNullException.ThrowIfNull(fromDirectory);
        ArgumentNullException.ThrowIfNull(toDirectory);
        if (Path.GetFullPath(fromDirectory).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(toDirectory).TrimEnd(Path.DirectorySeparatorChar))
            throw new ArgumentException($"the model files of {fromDirectory} cannot be copied onto themselves.", nameof(toDirectory));
        var names = new List<string>();
        foreach (string f in In(fromDirectory))
        {
            string name = Path.GetFileName(f), to = Path.Combine(toDirectory, name), part = to + ".part";
            File.Copy(f, part, overwrite: true);
            File.Move(part, to, overwrite: true);
            names.Add(name);
        }
        return names;
    }
}
