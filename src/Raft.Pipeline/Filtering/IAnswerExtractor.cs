namespace Raft.Pipeline.Filtering;

/// <summary>Pulls the final answer out of a free-text response; null when the response holds none.</summary>
public interface IAnswerExtractor
{
    /// <summary>The extractor's name as written in configs and reports (e.g. <c>last_number</c>).</summary>
    string Name { get; }

    /// <summary>The normalised final answer of <paramref name="text"/>, or null when there is none.</summary>
    string? Extract(string text);
}
