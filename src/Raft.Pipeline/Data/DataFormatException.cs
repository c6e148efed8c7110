namespace Raft.Pipeline.Data;

/// <summary>
/// A malformed input record: the message names the file, the 1-based line number (a row number in a Parquet file) and
/// what is wrong with it; or, for a problem of the whole file (a Parquet column missing or of the wrong type, a file that
/// is not Parquet), the file and the problem.
/// </summary>
public sealed class DataFormatException : FormatException
{
    /// <summary>Creates the exception for <paramref name="problem"/> at <paramref name="path"/> line (or row) <paramref name="line"/>.</summary>
    public DataFormatException(string path, int line, string problem, Exception? inner = null)
        : base(line > 0 ? $"{path} {UnitOf(path)} {line}: {problem}" : $"{path}: {problem}", inner)
    {
        Path = path;
        Line = line;
        Problem = problem;
    }

    /// <summary>Creates the exception for a problem of the whole file (<see cref="Line"/> 0).</summary>
    public DataFormatException(string path, string problem, Exception? inner = null) : this(path, 0, problem, inner) { }

    /// <summary>The file holding the bad record.</summary>
    public string Path { get; }

    /// <summary>The 1-based line number of the bad record (a Parquet file's 1-based row number); 0 for a problem of the whole file.</summary>
    public int Line { get; }

    /// <summary>What is wrong, without the file and line prefix.</summary>
    public string Problem { get; }

    /// <summary>True when the problem is one record's (a line or a row), which <c>--skip-bad-lines</c> can skip.</summary>
    public bool IsRecord => Line > 0;

    /// <summary>How a file's records are counted in messages: "row" for a Parquet file, else "line".</summary>
    public static string UnitOf(string path) => ParquetRecords.IsParquet(path) ? "row" : "line";
}
