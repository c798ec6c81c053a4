using System.Text.Json;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Tests.EndToEnd;

/// <summary>
/// A design whose dots the needle reaches only from two head positions, run as an operator would with the real
/// processes: smp design plan, smp run (the scalp of position 1 probed and registered, its dots placed, then a hold
/// saying how to turn the head), smp session resume (the head turned, the scalp of position 2 probed and registered,
/// its dots placed), checked on the simulator's record of what physically happened.
/// </summary>
public sealed class TwoHeadPositionsEndToEndTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(180);
    private readonly string _dir = Directory.CreateTempSubdirectory("smp-e2e-positions-").FullName;

    [Fact]
    public async Task A_design_in_two_head_positions_is_probed_and_placed_in_each_with_a_hold_to_turn_the_head_between_them()
    {
        var plans = Path.Combine(_dir, "plans");
        await using (var design = RealProcess.Start("smp", "design", "plan", Path.Combine(TestProfiles.RepoRoot, "hardware", "designs", "demo-two-positions.design.json"), "--out", plans))
        {
            Assert.Equal(0, await design.ExitCodeAsync(Timeout));
        }
        var planPath = Path.Combine(plans, "session-1.json");
        var plan = Plan.Parser.ParseJson(await File.ReadAllTextAsync(planPath));
        Assert.Equal(2, plan.Patches.Count);
        var inFirst = plan.Dots.Count(d => d.Patch == 1);
        Assert.InRange(inFirst, 1, plan.Dots.Count - 1);

        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var record = Path.Combine(_dir, "record.json");
        await using var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", Path.Combine(_dir, "data"), "--time-scale", "20", "--record", record);
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        await using (var home = RealProcess.Start("smp", "machine", "home", "--controller", url))
        {
            Assert.Equal(0, await home.ExitCodeAsync(Timeout));
        }

        // Position 1: probed, placed, then held for the operator to turn the head.
        await using var run = RealProcess.Start("smp", "run", planPath, "--no-ui", "--json", "--controller", url);
        Assert.Equal(3, await run.ExitCodeAsync(Timeout)); // held: stopped following, the session stays PAUSED
        var held = JsonDocument.Parse(run.Stdout).RootElement;
        var sessionId = held.GetProperty("sessionId").GetString()!;
        Assert.Equal("PAUSED", held.GetProperty("state").GetString());
        var second = plan.Patches.Single(p => p.Number == 2);
        Assert.Contains($"next, head position 2 of 2: {second.Instruction}; position the head, then resume", held.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(inFirst, held.GetProperty("dots").GetProperty("placed").GetInt32());
        Assert.Contains("the scalp of head position 1 measured: registration r-", run.Stderr, StringComparison.Ordinal);

        // Position 2: the resume probes the turned head's scalp first, then places the rest.
        await using var resume = RealProcess.Start("smp", "session", "resume", sessionId, "--no-ui", "--json", "--controller", url);
        Assert.Equal(0, await resume.ExitCodeAsync(Timeout));
        var done = JsonDocument.Parse(resume.Stdout).RootElement;
        Assert.Equal("COMPLETED", done.GetProperty("state").GetString());
        Assert.Equal(plan.Dots.Count, done.GetProperty("dots").GetProperty("placed").GetInt32());
        Assert.Contains("the scalp of head position 2 measured: registration r-", resume.Stderr, StringComparison.Ordinal);

        await using (var list = RealProcess.Start("smp", "surface", "list", sessionId, "--json", "--controller", url))
        {
            Assert.Equal(0, await list.ExitCodeAsync(Timeout));
            var registrations = JsonDocument.Parse(list.Stdout).RootElement.GetProperty("registrations").EnumerateArray().ToList();
            Assert.Equal([1, 2], registrations.Select(r => r.GetProperty("patch").GetInt32()).Order());
            Assert.All(registrations, r => Assert.True(r.GetProperty("valid").GetBoolean()));
        }

        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
        var motions = SimulationRecord.Read(record).Motions;

        // Each dot once: one plunge (a straight-down feed with the needle on, then its dwell at depth) per dot, none
        // twice at the same place; and none of the surface probes ran with the needle on.
        var plunges = motions.Zip(motions.Skip(1)).Where(p => p.Second.Kind == SimMotionKind.Dwell && p.Second.DurationSeconds > 0.05 && p.First.Kind == SimMotionKind.Feed
            && p.First.SpindleOn && p.First.From.X == p.First.To.X && p.First.From.Y == p.First.To.Y && p.First.To.Z < p.First.From.Z).Select(p => p.First).ToList();
        Assert.Equal(plan.Dots.Count, plunges.Count);
        Assert.Equal(plan.Dots.Count, plunges.Select(p => (Math.Round(p.To.X, 3), Math.Round(p.To.Y, 3))).Distinct().Count());
        Assert.Contains(motions, m => m.Kind == SimMotionKind.Probe);
        Assert.DoesNotContain(motions, m => m.Kind == SimMotionKind.Probe && m.SpindleOn);

        // Every plunge went its depth below the real skin of the head in the position it was placed in, along the
        // skin's normal: the simulator's scalp (the synthetic head, its board where the design assumed it), placed
        // by the still head's pose turned as each position says.
        var profile = TestProfiles.Sim();
        var scalp = SimulatedScalp.SyntheticHead();
        var depths = plan.Dots.Select(d => d.DepthMm).Distinct().ToList();
        for (var i = 0; i < plunges.Count; i++)
        {
            var patch = plan.Patches.Single(p => p.Number == (i < inFirst ? 1u : 2u));
            var pose = profile.FixedHead.ToTransform() * DesignPlans.FromMessage(patch.HeadPose);
            scalp.GantryFromHeadAt = _ => pose;
            var bottom = plunges[i].To;
            var skin = scalp.SkinAt(bottom.X, bottom.Y, 0) ?? throw new Xunit.Sdk.XunitException($"no skin above plunge {i} at {bottom}");
            var depth = Vec3.Dot(skin.Point - bottom, skin.Normal);
            Assert.True(depths.Any(d => Math.Abs(depth - d) <= 0.03), $"plunge {i} (head position {patch.Number}) went {depth:0.000} mm below the skin");
        }
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
