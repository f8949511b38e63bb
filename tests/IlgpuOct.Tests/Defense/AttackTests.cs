using FluentAssertions;
using IlgpuOct.Defense.Attacks;
using IlgpuOct.Kernels;
using IlgpuOct.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace IlgpuOct.Tests.Defense;

/// <summary>Properties of FGSM, PGD and Carlini-Wagner L2 on a tiny deterministic model.</summary>
public sealed class AttackTests(ITestOutputHelper output)
{
    [Fact]
    public void Largest_other_logit_masks_the_class_with_minus_infinity_not_zero()
    {
        float[] row = [-5f, -1f, -3f];
        AttackMath.MaxOther(row, 1).Should().Be((-3f, 2));
        AttackMath.MaxOther(row, 2).Should().Be((-1f, 1));
        // targeted margin max_{j != t} Z_j - Z_t; untargeted Z_y - max_{j != y} Z_j
        AttackMath.CwMargin(row, 0, targeted: true).Should().Be((4f, 1));
        AttackMath.CwMargin(row, 1, targeted: false).Should().Be((2f, 2));
    }

    [Fact]
    public void Pgd_gradient_of_an_image_does_not_depend_on_its_batch()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 2, seed: 21);
        using var objective = new CrossEntropyObjective(setup.Classifier);
        var options = new PgdOptions { Epsilon = 0.05f, Steps = 3, StepSize = 0.02f };
        var batch = Pgd.Run(objective, setup.Images, setup.Shape, AttackGoal.Untargeted(setup.Labels), options);
        int per = setup.Images.Length / setup.Count;
        var single = Pgd.Run(objective, setup.Images.AsSpan(per, per), [1, .. setup.Shape.AsSpan(1)], AttackGoal.Untargeted([setup.Labels[1]]), options);
        Tolerance.AssertClose(single.Adversarial, batch.Adversarial.AsSpan(per, per), 1e-6, 0, "image 1 alone vs in its batch");
        batch.Linf.Should().OnlyContain(v => v <= options.Epsilon + 1e-6f);
        batch.Adversarial.Should().OnlyContain(v => v >= 0f && v <= 1f);
    }

    [Fact]
    public void Pgd_restarts_keep_every_earlier_success_and_targeted_pgd_reaches_the_target()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 4, seed: 22);
        using var objective = new CrossEntropyObjective(setup.Classifier);
        var goal = AttackGoal.Untargeted(setup.Labels);
        var one = Pgd.Run(objective, setup.Images, setup.Shape, goal, new PgdOptions { Epsilon = 0.03f, Steps = 2, StepSize = 0.01f, RandomStart = true, Seed = 7 });
        var three = Pgd.Run(objective, setup.Images, setup.Shape, goal, new PgdOptions { Epsilon = 0.03f, Steps = 2, StepSize = 0.01f, RandomStart = true, Seed = 7, Restarts = 3 });
        output.WriteLine($"untargeted successes: 1 restart {one.Success.Count(s => s)}, 3 restarts {three.Success.Count(s => s)} of {setup.Count}");
        int per = setup.Images.Length / setup.Count;
        for (int i = 0; i < setup.Count; i++)
        {
            if (one.Success[i])
            {
                three.Success[i].Should().BeTrue($"image {i} succeeded in the first run");
                three.Adversarial.AsSpan(i * per, per).SequenceEqual(one.Adversarial.AsSpan(i * per, per)).Should().BeTrue($"image {i} keeps its first success");
            }
        }
        three.Linf.Should().OnlyContain(v => v <= 0.03f + 1e-6f);

        int[] targets = setup.Labels.Select(l => 1 - l).ToArray();
        var targeted = Pgd.Run(objective, setup.Images, setup.Shape, AttackGoal.Targeted(setup.Labels, targets), new PgdOptions { Epsilon = 0.15f, Steps = 8, StepSize = 0.03f });
        output.WriteLine($"targeted: predicted {string.Join(",", targeted.PredAdv)} for targets {string.Join(",", targets)}");
        targeted.Success.Count(s => s).Should().BeGreaterThanOrEqualTo(setup.Count * 3 / 4);
        for (int i = 0; i < setup.Count; i++)
        {
            targeted.Success[i].Should().Be(targeted.PredAdv[i] == targets[i], "targeted success means the target is predicted");
        }
        targeted.Linf.Should().OnlyContain(v => v <= 0.15f + 1e-6f);
    }

    [Fact]
    public void Fgsm_moves_every_unclipped_pixel_by_exactly_eps()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 1, seed: 23);
        const float eps = 0.02f;
        var result = Fgsm.Run(new CrossEntropyObjective(setup.Classifier), setup.Images, setup.Shape, AttackGoal.Untargeted(setup.Labels), eps);
        int moved = 0;
        for (int i = 0; i < setup.Images.Length; i++)
        {
            float delta = Math.Abs(result.Adversarial[i] - setup.Images[i]);
            (delta <= eps + 1e-6f).Should().BeTrue();
            moved += Math.Abs(delta - eps) <= 1e-6f ? 1 : 0;
        }
        moved.Should().BeGreaterThan(setup.Images.Length * 9 / 10);
    }

    [Fact]
    public void Carlini_wagner_success_rises_with_c_and_keeps_the_smallest_successful_l2()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 3, seed: 24);
        var goal = AttackGoal.Untargeted(setup.Labels);
        double[] cs = [1e-4, 1e-2, 1, 100];
        var rates = new List<int>();
        foreach (double c in cs)
        {
            var r = CarliniWagnerL2.Run(setup.Classifier, setup.Images, setup.Shape, goal,
                new CarliniWagnerOptions { InitialC = c, BinarySearchSteps = 1, MaxIterations = 20, LearningRate = 0.05 });
            rates.Add(r.Success.Count(s => s));
            r.Adversarial.Should().OnlyContain(v => v >= 0f && v <= 1f);
        }
        output.WriteLine($"successes for c = {string.Join(", ", cs)}: {string.Join(", ", rates)} of {setup.Count}");
        rates.Should().BeInAscendingOrder("a larger c weighs the margin more");
        rates[^1].Should().BeGreaterThan(rates[0]);

        var result = CarliniWagnerL2.Run(setup.Classifier, setup.Images, setup.Shape, goal,
            new CarliniWagnerOptions { InitialC = 1e-2, BinarySearchSteps = 4, MaxIterations = 20, LearningRate = 0.05 }, out var rounds);
        rounds.Should().HaveCount(4);
        int per = setup.Images.Length / setup.Count;
        for (int i = 0; i < setup.Count; i++)
        {
            var successful = rounds.Where(r => r.Succeeded[i]).Select(r => r.BestL2[i]).ToArray();
            output.WriteLine($"image {i}: c tried {string.Join(", ", rounds.Select(r => r.C[i].ToString("G3")))}; successful L2 {string.Join(", ", successful.Select(v => v.ToString("F4")))}; returned {result.L2[i]:F4}");
            if (successful.Length == 0)
            {
                result.Success[i].Should().BeFalse();
                result.Adversarial.AsSpan(i * per, per).SequenceEqual(setup.Images.AsSpan(i * per, per)).Should().BeTrue("a failed image is returned unchanged");
                continue;
            }
            result.Success[i].Should().BeTrue();
            ((double)result.L2[i]).Should().BeApproximately(successful.Min(), 1e-4, "the smallest successful L2 over the c tried is kept");
            for (int r = 1; r < rounds.Count; r++)
            {
                // binary search: after a success c shrinks, after a failure it grows
                if (rounds[r - 1].Succeeded[i])
                {
                    rounds[r].C[i].Should().BeLessThan(rounds[r - 1].C[i]);
                }
                else
                {
                    rounds[r].C[i].Should().BeGreaterThan(rounds[r - 1].C[i]);
                }
            }
        }
        result.Success.Count(s => s).Should().BeGreaterThan(0);
        result.Adversarial.Should().OnlyContain(v => v >= 0f && v <= 1f);
    }

    [Fact]
    public void Targeted_carlini_wagner_reaches_the_target_with_the_requested_confidence()
    {
        using var acc = DeviceSelection.Open("cpu", out _);
        using var setup = new TinyAttackSetup(acc, perClass: 2, seed: 25, classes: 3);
        int[] targets = setup.Labels.Select(l => (l + 1) % 3).ToArray();
        const float kappa = 0.5f;
        var result = CarliniWagnerL2.Run(setup.Classifier, setup.Images, setup.Shape, AttackGoal.Targeted(setup.Labels, targets),
            new CarliniWagnerOptions { InitialC = 10, BinarySearchSteps = 2, MaxIterations = 30, LearningRate = 0.05, Kappa = kappa });
        output.WriteLine($"targeted successes {result.Success.Count(s => s)} of {setup.Count}; L2 {string.Join(", ", result.L2.Select(v => v.ToString("F3")))}");
        result.Success.Count(s => s).Should().BeGreaterThan(setup.Count / 2);
        for (int i = 0; i < setup.Count; i++)
        {
            if (result.Success[i])
            {
                result.PredAdv[i].Should().Be(targets[i]);
                var (margin, _) = AttackMath.CwMargin(result.AdversarialLogits.AsSpan(i * 3, 3), targets[i], targeted: true);
                margin.Should().BeLessThan(-kappa, "success with confidence kappa");
            }
        }
        result.Adversarial.Should().OnlyContain(v => v >= 0f && v <= 1f);
    }
}
