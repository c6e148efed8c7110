namespace Raft.Pipeline.Data;

/// <summary>
/// A malformed input record: the message names the file, the 1-based line number and what is wrong with it.
/// </summary>
public sealed class DataFormatException : FormatException
{
    /// <summary>Creates the exception for <paramref name="problem"/> at <paramref name="path"/> line <paramref name="line"/>.</summary>
    public DataFormatException(string path, int line, string problem, Exception? inner = null)
        : base($"{path} line {line}: {problem}", inner)
    {
        Path = path;
        Line = line;
        Problem = problem;
    }

    /// <summary>The file holding the bad record.</summary>
    public string Path { get; }

    /// <summary>The 1-based line number of the bad record.</summary>
    public int Line { get; }

    /// <summary>What is wrong, without the file and line prefix.</summary>
    public string Problem { get; }
}
