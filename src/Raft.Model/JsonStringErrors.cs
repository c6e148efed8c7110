namespace Raft.Model;

/// <summary>
/// System.Text.Json parses a string holding a lone surrogate escape (<c>"\uDDDD"</c>) and throws only when the string is
/// read, as an <see cref="InvalidOperationException"/> that names no file; readers turn it into their typed error.
/// </summary>
public static class JsonStringErrors
{
    /// <summary>Whether <paramref name="e"/> was thrown by System.Text.Json (reading an invalid string), not by our code.</summary>
    public static bool IsFromJson(Exception e) =>
        e is InvalidOperationException && e.TargetSite?.DeclaringType?.Assembly == typeof(System.Text.Json.JsonDocument).Assembly;
}
