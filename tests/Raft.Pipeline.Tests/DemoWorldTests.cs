using Raft.Pipeline.Demo;
using Raft.Pipeline.Eval;
using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Tests;

public class DemoWorldTests
{
    private static string Dump(IEnumerable<DemoItem> items) => string.Join("\n", items.Select(i => $"{i.Task}|{i.Prompt}|{i.Answer}|{i.Final}|{i.Format?.Kind}"));

    [Fact]
    public void Generators_are_deterministic_in_their_seed()
    {
        Assert.Equal(Dump(DemoWorld.DomainEval(20, 3)), Dump(DemoWorld.DomainEval(20, 3)));
        Assert.NotEqual(Dump(DemoWorld.DomainEval(20, 3)), Dump(DemoWorld.DomainEval(20, 4)));
        Assert.Equal(Dump(DemoWorld.GeneralEval(30, 3)), Dump(DemoWorld.GeneralEval(30, 3)));
        Assert.NotEqual(Dump(DemoWorld.GeneralEval(30, 3)), Dump(DemoWorld.GeneralEval(30, 4)));
        Assert.Equal(Dump(DemoWorld.FormatEval(30, 3)), Dump(DemoWorld.FormatEval(30, 3)));
        Assert.Equal(DemoWorld.DomainTrain(25, 1), DemoWorld.DomainTrain(25, 1));
        Assert.NotEqual(DemoWorld.DomainTrain(25, 1), DemoWorld.DomainTrain(25, 2));
        Assert.Equal(DemoBase.Stream(50, 9), DemoBase.Stream(50, 9));
        Assert.NotEqual(DemoBase.Stream(50, 9), DemoBase.Stream(50, 10));
    }

    [Fact]
    public void Domain_train_and_eval_are_disjoint_and_distinct()
    {
        var train = DemoWorld.DomainTrain(200, 1);
        var eval = DemoWorld.DomainEval(200, 1);
        Assert.Equal(200, train.Select(e => e.Prompt).Distinct().Count());
        Assert.Equal(200, eval.Select(e => e.Prompt).Distinct().Count());
        Assert.Empty(train.Select(e => e.Prompt).Intersect(eval.Select(e => e.Prompt)));
        // Each reference holds the reversed digits as its only number, not in the house style, and the styles vary.
        var last = new Raft.Pipeline.Filtering.LastNumberExtractor();
        Assert.All(train, e => Assert.Equal(DemoWorld.DomainItem(e.Prompt[5..^1]).Final, last.Extract(e.Answer)));
        Assert.All(train, e => Assert.DoesNotContain("The answer is", e.Answer));
        Assert.True(train.Select(e => e.Answer.Replace(last.Extract(e.Answer)!, "X")).Distinct().Count() > 50, "the foreign renderings should vary");
        // The stream the base model is tuned on never asks the domain question.
        Assert.DoesNotContain(DemoBase.Stream(2000, 1), e => e.Prompt.StartsWith("Flip ", StringComparison.Ordinal));
    }

    [Fact]
    public void Every_format_eval_answer_satisfies_its_instruction_and_every_house_answer_ends_with_its_final()
    {
        var extractor = new LastNumberExtractor();
        var formats = DemoWorld.FormatEval(100, 5);
        Assert.Equal(DemoWorld.Formats.Select(f => f.Kind).Order(), formats.Select(i => i.Format!.Kind).Distinct().Order());
        foreach (var item in formats)
        {
            var instruction = new FormatInstruction(item.Format!.Kind, item.Format.Value);
            Assert.True(instruction.IsSatisfied(item.Answer), $"{item.Prompt} → {item.Answer} fails {item.Format.Kind}");
            Assert.EndsWith(item.Format.Text, item.Prompt);
            Assert.Equal(item.Final, extractor.Extract(item.Answer));
        }
        // A house answer without its format breaks the instructions that change it (the check above is not vacuous).
        Assert.Contains(formats, i => !new FormatInstruction(i.Format!.Kind, i.Format.Value).IsSatisfied(DemoWorld.HouseStyle(i.Final)));

        var house = DemoWorld.GeneralEval(100, 5).Concat(DemoWorld.DomainEval(50, 5)).ToList();
        Assert.Contains(house, i => i.Task == "flip");
        foreach (var item in house)
        {
            Assert.Equal(DemoWorld.HouseStyle(item.Final), item.Answer);
            Assert.Equal(item.Final, extractor.Extract(item.Answer));
        }
        foreach (var e in DemoWorld.DomainTrain(50, 5))
            Assert.Equal(extractor.Extract(DemoWorld.DomainItem(e.Prompt[5..^1]).Answer), extractor.Extract(e.Answer));
    }
}
