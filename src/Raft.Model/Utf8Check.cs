namespace Raft.Model;

/// <summary>
/// The UTF-8 check before parsing a JSON file: <see cref="System.Text.Json.JsonDocument"/> lets invalid UTF-8 inside strings
/// through and fails only when such a string is read, with an <see cref="InvalidOperationException"/> that names no file.
/// </summary>
internal static class Utf8Check
{
    /// <summary>Throws <see cref="InvalidDataException"/> naming <paramref name="path"/> when <paramref name="bytes"/> are not valid UTF-8.</summary>
    public static void Require(ReadOnlySpan<byte> bytes, string path, string what)
    {
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new InvalidDataException($"{path}: {what} is not valid UTF-8 (a damaged file?).");
    }
}
