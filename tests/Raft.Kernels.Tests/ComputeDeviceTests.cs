using System.Text.Json;
using System.Text.Json.Serialization;

namespace Raft.Kernels.Tests;

/// <summary>The one device vocabulary: spellings, parsing, JSON, and what a <see cref="KernelBackend"/> may claim.</summary>
public class ComputeDeviceTests
{
    [Fact]
    public void EveryDeviceHasOneSpellingThatParsesBack()
    {
        Assert.Equal([ComputeDevice.Auto, ComputeDevice.Cpu, ComputeDevice.Cuda, ComputeDevice.CudaC], ComputeDevices.All);
        Assert.Equal(["auto", "cpu", "cuda", "cuda-c"], ComputeDevices.All.Select(ComputeDevices.Name));
        Assert.Equal("auto, cpu, cuda or cuda-c", ComputeDevices.Choices);
        foreach (var d in ComputeDevices.All)
        {
            string name = ComputeDevices.Name(d);
            Assert.Equal(d, ComputeDevices.Parse(name));
            Assert.Equal(d, ComputeDevices.Parse($"  {name.ToUpperInvariant()}\t"));
            Assert.True(ComputeDevices.TryParse(name, out var back));
            Assert.Equal(d, back);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => ComputeDevices.Name((ComputeDevice)4));
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("")]
    [InlineData("cudac")]
    [InlineData("cuda c")]
    [InlineData(null)]
    public void AnythingElseIsRefusedNamingTheArgumentAndTheValue(string? text)
    {
        Assert.False(ComputeDevices.TryParse(text, out _));
        var e = Assert.Throws<ArgumentException>(() => ComputeDevices.Parse(text));
        Assert.Equal("device", e.ParamName);
        Assert.StartsWith($"device = '{text}': must be auto, cpu, cuda or cuda-c.", e.Message);
        Assert.DoesNotContain("--", e.Message);
        Assert.Equal("teacher_provider", Assert.Throws<ArgumentException>(() => ComputeDevices.Parse(text, "teacher_provider")).ParamName);
    }

    private sealed record Holder([property: JsonConverter(typeof(ComputeDeviceJsonConverter))] ComputeDevice Device);

    [Fact]
    public void JsonWritesTheSpellingAndReadsItCaseInsensitively()
    {
        // the converter on the property wins over a JsonStringEnumConverter in the options (which would write "CudaC")
        var options = new JsonSerializerOptions { Converters = { new JsonStringEnumConverter() } };
        foreach (var d in ComputeDevices.All)
        {
            string json = JsonSerializer.Serialize(new Holder(d), options);
            Assert.Equal($$"""{"Device":"{{ComputeDevices.Name(d)}}"}""", json);
            Assert.Equal(d, JsonSerializer.Deserialize<Holder>(json, options)!.Device);
            Assert.Equal(d, JsonSerializer.Deserialize<Holder>(json.ToUpperInvariant().Replace("DEVICE\"", "Device\""), options)!.Device);
        }
        foreach (string bad in (string[])["\"tpu\"", "null", "3", "\"CudaC\""])
            Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<Holder>($$"""{"Device":{{bad}}}""", options));
        Assert.Contains("got 'tpu'", Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<Holder>("""{"Device":"tpu"}""", options)).Message);
        Assert.Throws<JsonException>(() => JsonSerializer.Serialize(new Holder((ComputeDevice)9), options));
    }

    [Fact]
    public void ABackendTellsItsResolvedDeviceAndItsAccelerator()
    {
        using var cpu = new KernelBackend(new CpuKernels(1), ComputeDevice.Cpu, "cpu");
        Assert.Equal(ComputeDevice.Cpu, cpu.Device);
        Assert.Null(cpu.Accelerator);
        Assert.Null(cpu.DeviceKernels);

        // ILGPU's CPU accelerator stands in for a GPU here: a device backend exposes the accelerator its kernels run on
        var ilgpu = IlgpuKernels.CreateCpu();
        using var device = new KernelBackend(ilgpu, ComputeDevice.Cuda, "ilgpu on its CPU accelerator");
        Assert.Same(ilgpu.Accelerator, device.Accelerator);
        Assert.Same(ilgpu, device.DeviceKernels);

        Assert.Equal("device", Assert.Throws<ArgumentException>(() => new KernelBackend(new CpuKernels(1), ComputeDevice.Auto, "x")).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentException>(() => new KernelBackend(new CpuKernels(1), (ComputeDevice)5, "x")).ParamName);
        Assert.Equal("kernels", Assert.Throws<ArgumentException>(() => new KernelBackend(new CpuKernels(1), ComputeDevice.CudaC, "x")).ParamName);
    }
}
