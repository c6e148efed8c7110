using System.Text.Json;
using System.Text.Json.Serialization;

namespace Raft.Kernels;

/// <summary>
/// Where work runs: the one device vocabulary of the engine (the loss kernels, the GPU student, the ONNX Runtime
/// teacher's provider, the command line and the run's <c>config.json</c>). Spelled "auto", "cpu", "cuda" and "cuda-c"
/// (<see cref="ComputeDevices"/>).
/// </summary>
public enum ComputeDevice
{
    /// <summary>CUDA when a device is present and usable, the CPU otherwise (the default).</summary>
    Auto = 0,
    /// <summary>The CPU (for the loss kernels: the SIMD <see cref="CpuKernels"/>).</summary>
    Cpu = 1,
    /// <summary>CUDA through ILGPU's CUDA accelerator (for the loss kernels: <see cref="IlgpuKernels"/>); an error when no GPU is usable.</summary>
    Cuda = 2,
    /// <summary>
    /// The hand-written CUDA C loss kernels (kernels/*.cu compiled by NVRTC) on ILGPU's CUDA accelerator; an error
    /// without a GPU or NVRTC. A loss-kernel choice only: other consumers (the ONNX Runtime teacher) refuse it.
    /// </summary>
    CudaC = 3,
}

/// <summary>The spellings of <see cref="ComputeDevice"/>: "auto", "cpu", "cuda", "cuda-c" (lower case, as configs and flags write them).</summary>
public static class ComputeDevices
{
    /// <summary>Every device, in declaration order.</summary>
    public static IReadOnlyList<ComputeDevice> All { get; } = [ComputeDevice.Auto, ComputeDevice.Cpu, ComputeDevice.Cuda, ComputeDevice.CudaC];

    /// <summary>The accepted spellings, for messages: "auto, cpu, cuda or cuda-c".</summary>
    public const string Choices = "auto, cpu, cuda or cuda-c";

    /// <summary>The spelling of <paramref name="device"/>: "auto", "cpu", "cuda" or "cuda-c".</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="device"/> is not a defined value.</exception>
    public static string Name(ComputeDevice device) => device switch
    {
        ComputeDevice.Auto => "auto",
        ComputeDevice.Cpu => "cpu",
        ComputeDevice.Cuda => "cuda",
        ComputeDevice.CudaC => "cuda-c",
        _ => throw new ArgumentOutOfRangeException(nameof(device), (int)device, $"device = {(int)device}: must be {Choices}."),
    };

    /// <summary>Reads a spelling (case-insensitive, surrounding white space ignored); false for anything else, null included.</summary>
    public static bool TryParse(string? text, out ComputeDevice device)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "auto": device = ComputeDevice.Auto; return true;
            case "cpu": device = ComputeDevice.Cpu; return true;
            case "cuda": device = ComputeDevice.Cuda; return true;
            case "cuda-c": device = ComputeDevice.CudaC; return true;
            default: device = ComputeDevice.Auto; return false;
        }
    }

    /// <summary>Reads a spelling (case-insensitive, surrounding white space ignored).</summary>
    /// <param name="text">The text to read.</param>
    /// <param name="argument">The name the message gives the value (an option or a parameter name).</param>
    /// <exception cref="ArgumentException">Not one of <see cref="Choices"/>: <c>device = 'gpu': must be auto, cpu, cuda or cuda-c.</c></exception>
    public static ComputeDevice Parse(string? text, string argument = "device") =>
        TryParse(text, out var device) ? device : throw new ArgumentException($"{argument} = '{text}': must be {Choices}.", argument);
}

/// <summary>
/// Writes a <see cref="ComputeDevice"/> as its spelling (<see cref="ComputeDevices.Name"/>: "auto", "cuda-c", …) and
/// reads it back case-insensitively. Put it on the property (<c>[JsonConverter(typeof(ComputeDeviceJsonConverter))]</c>):
/// it then takes precedence over a <see cref="JsonStringEnumConverter"/> in the serializer options, which would write
/// the member names.
/// </summary>
public sealed class ComputeDeviceJsonConverter : JsonConverter<ComputeDevice>
{
    /// <inheritdoc />
    public override ComputeDevice Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        string? text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        if (ComputeDevices.TryParse(text, out var device)) return device;
        string shown = reader.TokenType switch
        {
            JsonTokenType.String => $"'{text}'",
            JsonTokenType.Null => "null",
            _ => $"a {reader.TokenType}",
        };
        throw new JsonException($"device must be {ComputeDevices.Choices}, got {shown}.");
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, ComputeDevice value, JsonSerializerOptions options)
    {
        if (!Enum.IsDefined(value)) throw new JsonException($"device = {(int)value}: must be {ComputeDevices.Choices}.");
        writer.WriteStringValue(ComputeDevices.Name(value));
    }
}
