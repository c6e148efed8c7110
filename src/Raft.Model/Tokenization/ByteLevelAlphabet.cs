namespace Raft.Model.Tokenization;

/// <summary>
/// GPT-2's byte-level alphabet: each byte is written as one printable character (printable Latin-1 bytes as themselves,
/// the others as U+0100 onwards), which is how byte-level BPE vocabularies (tokenizer.json, vocab.json) spell tokens.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = Build();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(x => x.c, x => (byte)x.b);

    private static char[] Build()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= 33 and <= 126 or >= 161 and <= 172 or >= 174 and <= 255;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    /// <summary>The character that spells byte <paramref name="b"/>.</summary>
    public static char Char(byte b) => ByteToChar[b];

    /// <summary>A vocabulary token's bytes; false when a character is not in the alphabet.</summary>
    public static bool TryGetBytes(string token, out byte[] bytes)
    {
        bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            if (!CharToByte.TryGetValue(token[i], out byte b)) return false;
            bytes[i] = b;
        }
        return true;
    }

    /// <summary>The token spelling of <paramref name="bytes"/>.</summary>
    public static string Spell(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }
}
