using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline.Tests;

public class TeacherParityTests
{
    /// <summary>A tiny model with weights of order 0.3 (not 0.02), so that its distributions are peaked and top-K orders are not near-ties.</summary>
    private static LlamaModel PeakedModel(int seed)
    {
        var m = LlamaModel.CreateRandom(TinyModels.Config(layers: 2), seed);
        foreach (var t in m.Parameters.Tensors)
            if (t.Shape.Length == 2)
                for (int i = 0; i < t.Length; i++) t.Data[i] *= 15f;
        m.Threads = 1;
        return m;
    }

    [Fact]
    public void ModelStore_opens_the_onnx_decoder_a_folder_holds_under_any_of_its_names()
    {
        using var tmp = new TempDir();
        var model = PeakedModel(32);
        OnnxExporter.Export(model.Config, model.Parameters, tmp.Path);
        var options = new TeacherOptions { Provider = ComputeDevice.Cpu, IntraOpThreads = 1, Log = _ => { } };
        var kernels = new CpuKernels(1);
        // Optimum's legacy merged decoder file name, beside its config.json
        File.Move(Path.Combine(tmp.Path, OnnxExporter.ModelFile), Path.Combine(tmp.Path, TeacherSession.MergedDecoderFile));
        using (var teacher = ModelStore.OpenTeacher(tmp.Path, options, kernels, expectedVocab: model.Config.VocabSize))
        {
            var onnx = Assert.IsType<OnnxTeacher>(teacher);
            Assert.EndsWith(TeacherSession.MergedDecoderFile, onnx.Session.ModelPath);
        }
        // neither an ONNX decoder nor a checkpoint: the message names every file looked for
        File.Delete(Path.Combine(tmp.Path, TeacherSession.MergedDecoderFile));
        File.Delete(Path.Combine(tmp.Path, Checkpoint.ConfigFile));
        var e = Assert.Throws<FileNotFoundException>(() => ModelStore.OpenTeacher(tmp.Path, options, kernels));
        foreach (string name in new[] { OnnxExporter.ModelFile, GenAiConfig.FileName, TeacherSession.MergedDecoderFile, Checkpoint.ConfigFile })
            Assert.Contains(name, e.Message);
    }

    [Fact]
    public void Onnx_and_engine_teachers_agree_on_scores_and_greedy_generations()
    {
        using var tmp = new TempDir();
        var model = PeakedModel(31);
        OnnxExporter.Export(model.Config, model.Parameters, tmp.Path);
        var kernels = new CpuKernels(1);
        using var engine = new EngineTeacher(model, kernels);
        using var onnx = OnnxTeacher.Open(tmp.Path, new TeacherOptions { Provider = ComputeDevice.Cpu, IntraOpThreads = 1 }, kernels);
        Assert.Equal(engine.VocabSize, onnx.VocabSize);

        var tok = ByteTokenizer.Instance;
        int[][] contexts = [ChatTemplate.Raft.Encode(tok, [ChatMessage.User("What is 2+3?")], addGenerationPrompt: true).Ids, tok.Encode("Flip 123.")];
        int[][] rollouts = [tok.Encode("The answer is 5."), tok.Encode("321")];
        const int k = 8;
        var a = engine.ScoreEach(contexts, rollouts, new DistillSettings(k, 1.5f));
        var b = onnx.ScoreEach(contexts, rollouts, new DistillSettings(k, 1.5f));
        Assert.Equal(2, a.Count);
        Assert.Equal(2, b.Count);
        for (int s = 0; s < 2; s++)
        {
            Assert.Equal(rollouts[s].Length, a[s].Rows);
            Assert.Equal(a[s].Rows, b[s].Rows);
            Assert.Equal(a[s].Indices, b[s].Indices);
            for (int i = 0; i < a[s].Probs.Length; i++)
                Assert.True(Math.Abs(a[s].Probs[i] - b[s].Probs[i]) <= 1e-4, $"seq {s} entry {i}: {a[s].Probs[i]} vs {b[s].Probs[i]}");
            // Peaked enough that the comparison means something.
            Assert.True(a[s].Probs.Where((_, i) => i % k == 0).Average() > 0.2, "degenerate (near-uniform) teacher");
        }

        var greedy = new SamplingOptions { Temperature = 0f, MaxNewTokens = 12 };
        var ga = engine.Generate(contexts, greedy, 0);
        var gb = onnx.Generate(contexts, greedy, 0);
        for (int s = 0; s < 2; s++)
        {
            Assert.Equal(12, ga[s].Tokens.Length);
            Assert.Equal(ga[s].Tokens, gb[s].Tokens);
        }
    }
}
