using System.Text.Json;
using System.Text.Json.Serialization;

namespace Raft.Kernels;

/// <summary>
/// The spellings of <see cref="DistillLossKind"/> on every command and in every file: "forward-kl", "reverse-kl", "jsd"
/// (lower case, as <c>raft kd --loss-kind</c>, <c>raft train --loss-kind</c> and a run's <c>config.json</c> write them).
/// </summary>
public static class DistillLossKinds
{
    /// <summary>The accepted spellings, for messages: "forward-kl, reverse-kl or jsd".</summary>
    public const string Choices = "forward-kl, reverse-kl or jsd";

    /// <summary>The values as a help placeholder: "forward-kl|reverse-kl|jsd".</summary>
    public const string HelpName = "forward-kl|reverse-kl|jsd";

    /// <summary>The spelling of <paramref name="kind"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="kind"/> is not a defined value.</exception>
    public static string Name(DistillLossKind kind) => kind switch
    {
        DistillLossKind.ForwardKL => "forward-kl",
        DistillLossKind.ReverseKL => "reverse-kl",
        DistillLossKind.Jsd => "jsd",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), (int)kind, $"loss kind = {(int)kind}: must be {Choices}."),
    };

    /// <summary>
    /// Reads a spelling, case-insensitively and with surrounding white space ignored. The enum's member names
    /// ("ForwardKL", "ReverseKL", "Jsd"), which run folders written before this spelling hold in their <c>config.json</c>,
    /// are read too (compatibility: a resume or a <c>--config</c> of such a run). False for anything else, null included.
    /// </summary>
    public static bool TryParse(string? text, out DistillLossKind kind)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "forward-kl" or "forwardkl": kind = DistillLossKind.ForwardKL; return true;
            case "reverse-kl" or "reversekl": kind = DistillLossKind.ReverseKL; return true;
            case "jsd": kind = DistillLossKind.Jsd; return true;
            default: kind = DistillLossKind.ForwardKL; return false;
        }
    }
}

/// <summary>
/// Writes a <see cref="DistillLossKind"/> as its spelling (<see cref="DistillLossKinds.Name"/>) and reads any spelling
/// <see cref="DistillLossKinds.TryParse"/> takes. Put it on the property: it takes precedence over a
/// <see cref="JsonStringEnumConverter"/> in the serializer options, which would write the member names.
/// </summary>
public sealed class DistillLossKindJsonConverter : JsonConverter<DistillLossKind>
{
    /// <inheritdoc />
    public override DistillLossKind Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        string? text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        if (DistillLossKinds.TryParse(text, out var kind)) return kind;
        string shown = reader.TokenType switch
        {
            JsonTokenType.String => $"'{text}'",
            JsonTokenType.Null => "null",
            _ => $"a {reader.TokenType}",
        };
        throw new JsonException($"loss_kind must be {DistillLossKinds.Choices}, got {shown}.");
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, DistillLossKind value, JsonSerializerOptions options)
    {
        if (!Enum.IsDefined(value)) throw new JsonException($"loss_kind = {(int)value}: must be {DistillLossKinds.Choices}.");
        writer.WriteStringValue(DistillLossKinds.Name(value));
    }
}
