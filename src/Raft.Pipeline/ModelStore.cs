using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline;

/// <summary>A loaded student: the model, its tokenizer and its chat template.</summary>
public sealed record LoadedModel(LlamaModel Model, ITokenizer Tokenizer, ChatTemplate Template, string Directory);

/// <summary>Loads students and teachers from folders, with errors that name the folder and what is missing.</summary>
public static class ModelStore
{
    /// <summary>
    /// Loads a checkpoint folder (config.json + model.safetensors) with its tokenizer (the byte tokenizer when model_type is
    /// "raft", else the tokenizer files in the folder) and chat template: <paramref name="templateOverride"/> (a built-in
    /// one) when given, else the folder's own (chat_template.jinja, chat_template.json or tokenizer_config.json's
    /// chat_template, rendered as Hugging Face does), else the built-in fallback the tokenizer implies. <paramref name="log"/>
    /// gets one line saying which ("chat template: tokenizer_config.json of DIR", "chat template: fallback ChatML").
    /// </summary>
    public static LoadedModel LoadStudent(string directory, int threads = 0, string? templateOverride = null, Action<string>? log = null)
        => LoadStudent(directory, SafeTensorDType.F32, threads, templateOverride, log);

    /// <summary>
    /// As <see cref="LoadStudent(string, int, string?, Action{string}?)"/>, with the matrices held as <paramref name="weights"/>:
    /// F32 (trainable) or BF16 / F16 (as stored, an inference-only model for generation and evaluation; see
    /// <see cref="Checkpoint.LoadForInference"/>). A 16-bit choice is logged ("weights: bf16 (inference only)").
    /// </summary>
    public static LoadedModel LoadStudent(string directory, SafeTensorDType weights, int threads = 0, string? templateOverride = null, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"model folder {directory} does not exist.");
        if (!File.Exists(Path.Combine(directory, Checkpoint.ConfigFile)))
            throw new FileNotFoundException($"model folder {directory} has no {Checkpoint.ConfigFile}: not a checkpoint.", Path.Combine(directory, Checkpoint.ConfigFile));
        var model = Checkpoint.LoadModel(directory, weights);
        model.Threads = threads;
        var config = model.Config;
        if (model.IsInferenceOnly) log?.Invoke($"weights: {model.WeightsDescription} (inference only)");
        var tokenizer = TokenizerLoader.ForModel(directory, config.ModelType);
        var template = ChatTemplate.ForModel(directory, tokenizer, config.ModelType, templateOverride);
        log?.Invoke($"chat template: {template.Origin}");
        return new LoadedModel(model, tokenizer, template, directory);
    }

    /// <summary>
    /// Opens a teacher folder: an ONNX decoder (<c>model.onnx</c>, the file a <c>genai_config.json</c> names, or Optimum's
    /// <c>decoder_model_merged.onnx</c>: <see cref="TeacherSession.FindModelFile"/>; served by ONNX Runtime with <paramref name="options"/>) or, when there is
    /// none, a checkpoint (served by the engine's own forward). Checks its vocabulary against <paramref name="expectedVocab"/>
    /// when given. <paramref name="vocabLimit"/> is the student tokenizer's size when the embedding has padding rows beyond it:
    /// the teacher's top-K never holds those ids (0: no limit). A checkpoint teacher computes its logits
    /// <paramref name="logitsChunkRows"/> rows at a time (0: <see cref="LogitsChunk.Rows"/>'s default).
    /// </summary>
    public static ITeacher OpenTeacher(string directory, TeacherOptions options, ILossKernels kernels, int? expectedVocab = null, int threads = 0,
        int vocabLimit = 0, SafeTensorDType weights = SafeTensorDType.F32, int logitsChunkRows = 0)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(options);
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"teacher folder {directory} does not exist.");
        ITeacher teacher;
        if (TeacherSession.FindModelFile(directory) is not null && weights != SafeTensorDType.F32)
            throw new ArgumentException($"weights dtype {weights.WeightsDTypeName()} applies to a checkpoint teacher; {directory} holds an ONNX decoder, " +
                "whose weights are in the dtype the ONNX file stores (use fp32 here, or give the checkpoint folder).", nameof(weights));
        if (TeacherSession.FindModelFile(directory) is not null)
            teacher = OnnxTeacher.Open(directory, options with { ExpectedVocabSize = expectedVocab ?? options.ExpectedVocabSize }, kernels,
                vocabLimit: LimitFor(vocabLimit, expectedVocab));
        else if (File.Exists(Path.Combine(directory, Checkpoint.ConfigFile)))
        {
            var model = Checkpoint.LoadModel(directory, weights);
            model.Threads = threads;
            teacher = new EngineTeacher(model, kernels, model.IsInferenceOnly ? $"engine {directory} ({model.WeightsDescription} weights)" : $"engine {directory}",
                vocabLimit: LimitFor(vocabLimit, model.Config.VocabSize), logitsChunkRows: logitsChunkRows);
        }
        else throw new FileNotFoundException($"teacher folder {directory} holds neither an ONNX decoder ({OnnxExporter.ModelFile}, {GenAiConfig.FileName}'s file, {TeacherSession.MergedDecoderFile}) nor {Checkpoint.ConfigFile}.", directory);
        if (expectedVocab is int v && teacher.VocabSize != v)
        {
            int got = teacher.VocabSize;
            teacher.Dispose();
            throw new ArgumentException($"the teacher at {directory} has a vocabulary of {got} tokens, the student {v}; they must share a tokenizer.");
        }
        return teacher;
    }

    // A limit equal to the vocabulary is no limit; a vocabulary mismatch is reported by the check above instead.
    private static int LimitFor(int limit, int? vocab) => vocab is int v && limit >= v ? 0 : limit;
}
