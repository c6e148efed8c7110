using System.Text.Json;
using Raft.Kernels;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

public class TrainOptionsTests
{
    public static TheoryData<string, Func<TrainOptions, TrainOptions>> BadValues => new()
    {
        { "steps", o => o with { Steps = 0 } },
        { "batch_size", o => o with { BatchSize = 0 } },
        { "learning_rate", o => o with { LearningRate = 0 } },
        { "learning_rate", o => o with { LearningRate = double.NaN } },
        { "min_learning_rate", o => o with { MinLearningRate = 1 } },
        { "min_learning_rate", o => o with { MinLearningRate = -1e-5 } },
        { "min_lr_ratio", o => o with { MinLearningRateRatio = 1.5 } },
        { "min_lr_ratio", o => o with { MinLearningRateRatio = double.NaN } },
        { "warmup_steps", o => o with { WarmupSteps = -1 } },
        { "weight_decay", o => o with { WeightDecay = -0.1 } },
        { "beta1", o => o with { Beta1 = 1 } },
        { "beta2", o => o with { Beta2 = -0.1 } },
        { "clip_norm", o => o with { ClipNorm = -1 } },
        { "threads", o => o with { Threads = -1 } },
        { "checkpoint_every", o => o with { CheckpointEvery = -2 } },
        { "max_nonfinite_steps", o => o with { MaxNonFiniteSteps = 0 } },
        { "top_k", o => o with { TopK = 0 } },
        { "temperature", o => o with { Temperature = 0 } },
        { "temperature", o => o with { Temperature = float.PositiveInfinity } },
        { "jsd_beta", o => o with { JsdBeta = 1.5f } },
        { "ema_decay", o => o with { EmaDecay = 1 } },
        { "target_ratio", o => o with { TargetRatio = [1] } },
        { "target_ratio", o => o with { TargetRatio = [1, 0] } },
        { "fixed_weights", o => o with { FixedWeights = [0, 0] } },
        { "fixed_weights", o => o with { FixedWeights = [-1, 1] } },
        { "fixed_weights", o => o with { FixedWeights = [1, 1, 1] } },
        { "rollout_temperature", o => o with { RolloutTemperature = -1 } },
        { "rollout_max_tokens", o => o with { RolloutMaxTokens = 0 } },
        { "rollouts_per_prompt", o => o with { RolloutsPerPrompt = 0 } },
        { "rollouts_per_prompt", o => o with { RolloutsPerPrompt = TrainOptions.MaxRolloutsPerPrompt + 1 } },
    };

    [Theory]
    [MemberData(nameof(BadValues))]
    public void Validate_rejects_a_bad_value_naming_the_option(string option, Func<TrainOptions, TrainOptions> change)
    {
        var good = new TrainOptions();
        good.Validate();
        var e = Assert.Throws<ArgumentException>(() => change(good).Validate());
        Assert.Equal(option, e.ParamName);
        Assert.StartsWith(option + " = ", e.Message);
    }

    [Theory]
    [InlineData(1e-3, null, 0.1, 1e-4)]   // the old absolute default at the old default learning rate
    [InlineData(1e-5, null, 0.1, 1e-6)]   // a real model's learning rate: the floor follows it (was refused: 1e-4 > 1e-5)
    [InlineData(2e-4, null, 0.0, 0.0)]
    [InlineData(2e-4, 3e-5, 0.1, 3e-5)]   // an explicit min_learning_rate wins
    public void The_decay_floor_is_a_ratio_of_the_learning_rate_unless_given(double lr, double? min, double ratio, double floor)
    {
        var o = new TrainOptions { LearningRate = lr, MinLearningRate = min, MinLearningRateRatio = ratio };
        o.Validate();
        Assert.Equal(floor, o.FloorLearningRate, 15);
    }

    [Fact]
    public void Raft_only_options_are_not_checked_for_sft()
    {
        new TrainOptions { Method = TrainMethod.Sft, TopK = 0, TargetRatio = [], RolloutMaxTokens = 0 }.Validate();
        Assert.Throws<ArgumentException>(() => new TrainOptions { Method = TrainMethod.Raft, TopK = 0 }.Validate());
    }

    [Fact]
    public void Json_round_trip_keeps_every_option()
    {
        var o = new TrainOptions
        {
            Method = TrainMethod.Sft, Steps = 7, BatchSize = 3, LearningRate = 2.5e-4, MinLearningRate = 1e-5, WarmupSteps = 2,
            WeightDecay = 0.05, Beta1 = 0.8, Beta2 = 0.99, ClipNorm = 0.5, Seed = 42, Threads = 2, CheckpointEvery = 3,
            MaxNonFiniteSteps = 4, TopK = 5, Temperature = 2f, LossKind = DistillLossKind.Jsd, JsdBeta = 0.25f, EmaDecay = 0.7,
            TargetRatio = [2, 1], FixedWeights = [0.3, 0.7], AnswerConditioned = false, RolloutTemperature = 0.5f,
            RolloutMaxTokens = 9, RolloutsPerPrompt = 2, Device = ComputeDevice.CudaC,
        };
        string json = o.ToJson();
        Assert.Contains("\"learning_rate\"", json);
        Assert.Contains("\"loss_kind\": \"jsd\"", json);
        Assert.Contains("\"Sft\"", json);
        Assert.Contains("\"device\": \"cuda-c\"", json);
        using var tmp = new TempDir();
        var back = TrainOptions.Load(tmp.Write("c.json", json));
        Assert.Equal(json, back.ToJson());
        Assert.Equal([2.0, 1.0], back.TargetRatio);
        Assert.Equal([0.3, 0.7], back.FixedWeights!);
        Assert.Equal(o with { TargetRatio = back.TargetRatio, FixedWeights = back.FixedWeights }, back);
    }

    [Fact]
    public void Device_is_one_of_four_and_a_gpu_device_needs_the_callers_kernels()
    {
        Assert.Equal(ComputeDevice.Auto, new TrainOptions().Device);
        foreach (var d in ComputeDevices.All) new TrainOptions { Device = d }.Validate();
        var e = Assert.Throws<ArgumentException>(() => new TrainOptions { Device = ComputeDevices.Parse("tpu") }.Validate());
        Assert.Contains("device = 'tpu'", e.Message);
        var undefined = Assert.Throws<ArgumentException>(() => new TrainOptions { Device = (ComputeDevice)7 }.Validate());
        Assert.Contains("device = 7", undefined.Message);
        // without kernels the Trainer runs the CPU kernels: fine for auto and cpu, refused for a GPU device
        var data = new[] { new TrainExample("q", "a") };
        var model = TinyModels.Model();
        var sft = TinyModels.Sft(1);
        _ = new Trainer(model, Raft.Model.Tokenization.ByteTokenizer.Instance, Raft.Model.Tokenization.ChatTemplate.Raft, data, sft with { Device = ComputeDevice.Cpu });
        var refused = Assert.Throws<ArgumentException>(() =>
            new Trainer(model, Raft.Model.Tokenization.ByteTokenizer.Instance, Raft.Model.Tokenization.ChatTemplate.Raft, data, sft with { Device = ComputeDevice.Cuda }));
        Assert.Contains("device = cuda", refused.Message);
    }

    [Fact]
    public void Device_is_written_as_the_same_strings_as_before_and_read_case_insensitively()
    {
        string auto = new TrainOptions().ToJson();
        Assert.Contains("\n  \"device\": \"auto\",\n", auto);
        using var tmp = new TempDir();
        foreach (var (device, name) in new[] { (ComputeDevice.Auto, "auto"), (ComputeDevice.Cpu, "cpu"), (ComputeDevice.Cuda, "cuda"), (ComputeDevice.CudaC, "cuda-c") })
        {
            string json = new TrainOptions { Device = device }.ToJson();
            // byte for byte the JSON of the string-typed option: only the device's value differs from the default's
            Assert.Equal(auto, json.Replace($"\"device\": \"{name}\"", "\"device\": \"auto\""));
            Assert.Contains($"\"device\": \"{name}\"", json);
            Assert.Equal(device, TrainOptions.Load(tmp.Write($"{name}.json", json)).Device);
            Assert.Equal(device, TrainOptions.Load(tmp.Write($"{name}-upper.json", $"{{\"device\": \" {name.ToUpperInvariant()}\"}}")).Device);
        }
        var e = Assert.Throws<InvalidDataException>(() => TrainOptions.Load(tmp.Write("tpu.json", "{\"device\": \"tpu\"}")));
        Assert.Contains("got 'tpu'", e.Message);
        Assert.Throws<InvalidDataException>(() => TrainOptions.Load(tmp.Write("null.json", "{\"device\": null}")));
        Assert.Throws<InvalidDataException>(() => TrainOptions.Load(tmp.Write("number.json", "{\"device\": 2}")));
    }

    [Fact]
    public void Trainable_must_be_a_valid_pattern_that_matches_a_tensor()
    {
        Assert.Null(new TrainOptions().Trainable);
        var bad = Assert.Throws<ArgumentException>(() => new TrainOptions { Trainable = "mlp(" }.Validate());
        Assert.Contains("trainable = \"mlp(\"", bad.Message);
        Assert.Equal("trainable", bad.ParamName);
        Assert.Contains("trainable", Assert.Throws<ArgumentException>(() => new TrainOptions { Trainable = "" }.Validate()).Message);
        var model = TinyModels.Model();
        var none = Assert.Throws<ArgumentException>(() => TinyModels.Trainer(model, TinyModels.Sft(1) with { Trainable = "no_such_tensor" }));
        Assert.Contains("no_such_tensor", none.Message);
        Assert.Contains("matches none", none.Message);
        // the JSON key round-trips
        var o = TinyModels.Sft(1) with { Trainable = "mlp|norm" };
        Assert.Contains("\"trainable\": \"mlp|norm\"", o.ToJson());
    }

    [Fact]
    public void Load_of_a_config_with_an_unknown_key_names_the_file()
    {
        using var tmp = new TempDir();
        string path = tmp.Write("bad.json", "{\n  \"steps\": 3,\n  \"learning_rat\": 0.1\n}");
        var e = Assert.Throws<InvalidDataException>(() => TrainOptions.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("learning_rat", e.Message);
        var missing = Assert.Throws<FileNotFoundException>(() => TrainOptions.Load(tmp.File("none.json")));
        Assert.Contains("none.json", missing.Message);
    }
    [Fact]
    public void Base_weights_dtype_keeps_a_lora_base_as_stored_and_is_refused_without_lora()
    {
        var lora = new TrainOptions { LoraRank = 8 };
        Assert.Equal(Raft.Model.SafeTensorDType.BF16, lora.StudentMatrices(Raft.Model.SafeTensorDType.BF16));   // auto
        Assert.Equal(Raft.Model.SafeTensorDType.F32, lora.StudentMatrices(Raft.Model.SafeTensorDType.F32));
        Assert.Equal(Raft.Model.SafeTensorDType.F32, (lora with { BaseWeightsDType = "fp32" }).StudentMatrices(Raft.Model.SafeTensorDType.BF16));
        Assert.Equal(Raft.Model.SafeTensorDType.F32, new TrainOptions().StudentMatrices(Raft.Model.SafeTensorDType.BF16));   // full fine-tuning
        (lora with { BaseWeightsDType = "bf16" }).Validate();
        var e = Assert.Throws<ArgumentException>(() => new TrainOptions { BaseWeightsDType = "bf16" }.Validate());
        Assert.Equal("base_weights_dtype", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => (lora with { BaseWeightsDType = "int8" }).Validate());
        Assert.Contains("auto, fp32", e.Message);
        e = Assert.Throws<ArgumentException>(() => new TrainOptions { LogitsChunkRows = -1 }.Validate());
        Assert.Equal("logits_chunk_rows", e.ParamName);
    }
}
