using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Plans;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Tests.Integration;

namespace SmpRobot.Tests.Faults;

/// <summary>
/// A whole session through the real controller host on a simulated gantry with injected faults,
/// and the checks every fault must pass, read from the simulator's motion record.
/// </summary>
internal sealed class FaultSession : IAsyncDisposable
{
    public const int Dots = 40;
    public const double TimeScale = 50;

    private FaultSession(ControllerFixture fixture, Plan plan, Session final)
    {
        Fixture = fixture;
        Plan = plan;
        Final = final;
    }

    public static MachineProfile Profile => ControllerFixture.Profile;
    public ControllerFixture Fixture { get; }
    public SimulatedGantry Simulator => Fixture.Simulator;
    public Plan Plan { get; }
    /// <summary>The session once it ended (finished or paused).</summary>
    public Session Final { get; }

    /// <summary>The demo plan every fault session runs.</summary>
    public static Plan MakePlan() => DemoPlanGenerator.Generate(Dots, seed: 21);

    /// <summary>Home, heartbeat, run the plan, and wait (at most <paramref name="timeout"/>) until the session ends in any state.</summary>
    public static async Task<FaultSession> RunAsync(string faults, TimeSpan? timeout = null)
    {
        var simulator = new SimulatedGantry(Profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = TimeScale, Faults = FaultPlan.Parse(faults) });
#pragma warning disable CA2000 // the FaultSession returned owns the fixture; the catch below disposes it otherwise
        var fixture = await ControllerFixture.StartAsync(simulator: simulator);
#pragma warning restore CA2000
        try
        {
            await fixture.HomeAsync();
            await fixture.StartHeartbeatAsync();
            var plan = MakePlan();
            var session = await fixture.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan });
            await fixture.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
            var final = await fixture.WaitForAsync(session.Id, ControllerFixture.IsEnded, timeout ?? TimeSpan.FromSeconds(30));
            return new FaultSession(fixture, plan, final);
        }
        catch
        {
            await fixture.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// The lines the controller sends for <see cref="MakePlan"/> on a healthy machine, numbered as the
    /// simulator counts host lines ($H is line 1): preamble, then per dot travel + sync and place.
    /// </summary>
    public static IReadOnlyList<(int Line, string Text, int DotIndex, string Role)> ExpectedLines()
    {
        var plan = MakePlan();
        var profile = Profile;
        var program = new DotProgram(profile);
        var head = profile.FixedHead.ToTransform();
        var lines = new List<(int, string, int, string)>();
        var n = 2; // line 1 is the "$$" settings check on connect, line 2 the "$H" homing cycle
        foreach (var l in program.SessionPreamble()) lines.Add((++n, l.Line, 0, "preamble"));
        var current = profile.HomePosition;
        var dotIndex = 0;
        foreach (var index in PathOrdering.Order(plan.Dots))
        {
            dotIndex++;
            var d = plan.Dots[index];
            var skin = head.Apply(new Vec3(d.XMm, d.YMm, d.ZMm));
            var hover = program.Grid.Quantise(skin with { Z = skin.Z + profile.HoverHeightMm });
            var depth = program.Grid.Quantise(skin with { Z = skin.Z - d.DepthMm });
            foreach (var l in program.Travel(current, hover)) lines.Add((++n, l.Line, dotIndex, l.Line.StartsWith("G90", StringComparison.Ordinal) ? "travel-xy" : "travel-z"));
            lines.Add((++n, DotProgram.Sync.Line, dotIndex, "arrival"));
            var place = program.Place(hover, depth, d.DwellMs);
            string[] roles = ["plunge", "dwell", "retract", "confirm"];
            for (var i = 0; i < place.Count; i++) lines.Add((++n, place[i].Line, dotIndex, roles[i]));
            current = hover;
        }
        return lines;
    }

    /// <summary>The host line number of dot <paramref name="dotIndex"/>'s (1-based, in execution order) line of <paramref name="role"/>.</summary>
    public static int LineOf(int dotIndex, string role) => ExpectedLines().First(l => l.DotIndex == dotIndex && l.Role == role).Line;

    /// <summary>For each dot, how many completed plunges reached exactly its depth point; fails on any plunge deeper than a dot's depth or into skin away from every dot.</summary>
    public Dictionary<string, int> Placements()
    {
        var targets = MotionTruth.DepthTargets(Plan, Profile);
        var skinById = Plan.Dots.ToDictionary(d => d.Id, d => targets[d.Id].Z + d.DepthMm);
        var byXy = targets.ToDictionary(t => (Math.Round(t.Value.X, 4), Math.Round(t.Value.Y, 4)), t => t.Key);
        var highestSkinZ = skinById.Values.Max();
        var counts = Plan.Dots.ToDictionary(d => d.Id, _ => 0);
        foreach (var m in Simulator.MotionRecord.Where(m => m.From.X == m.To.X && m.From.Y == m.To.Y && m.To.Z < m.From.Z))
        {
            if (byXy.TryGetValue((Math.Round(m.To.X, 4), Math.Round(m.To.Y, 4)), out var id))
            {
                // At a dot's place: never deeper than its depth.
                Assert.True(m.To.Z >= targets[id].Z - 1e-9, $"{m} went deeper than dot {id}'s depth {targets[id].Z}");
                if (m.Completed && Math.Abs(m.To.Z - targets[id].Z) < 1e-9) counts[id]++;
            }
            else
            {
                Assert.True(m.To.Z > highestSkinZ, $"{m} went below the skin at a place that is no dot of the plan");
            }
        }
        return counts;
    }

    /// <summary>
    /// What every fault must leave behind: the session is not running and says why; no dot placed twice;
    /// the ledger matches the motion record (a dot counted placed has exactly one completed plunge at its
    /// depth, and only a dot in doubt may differ); every dot accounted for; at most one dot in doubt;
    /// and, while the link works, the needle drive off and the needle above the skin.
    /// </summary>
    public void AssertSafeEnd(string reasonContains, int maxInDoubt, bool linkWorks, params SessionState[] states)
    {
        var s = Final;
        Assert.True(states.Contains(s.State), $"session ended {s.State} ({s.Reason}); expected {string.Join(" or ", states)}");
        Assert.Contains(reasonContains, s.Reason, StringComparison.OrdinalIgnoreCase);
        var placements = Placements();
        Assert.All(placements, p => Assert.True(p.Value <= 1, $"dot {p.Key} was placed {p.Value} times"));
        var inDoubt = s.InDoubt.Select(d => d.DotId).ToHashSet();
        Assert.Equal(s.Dots.InDoubt, inDoubt.Count);
        Assert.InRange(s.Dots.InDoubt, 0, maxInDoubt);
        Assert.Equal(0, s.Dots.Commanded);
        Assert.Equal(s.Dots.Total, s.Dots.Placed + s.Dots.Pending + s.Dots.InDoubt + s.Dots.Skipped);
        Assert.Equal(s.Dots.Placed, placements.Count(p => p.Value == 1 && !inDoubt.Contains(p.Key)));
        if (linkWorks)
        {
            Assert.False(Simulator.SpindleOn, "the needle drive is still on");
            var targets = MotionTruth.DepthTargets(Plan, Profile);
            var highestSkinZ = Plan.Dots.Max(d => targets[d.Id].Z + d.DepthMm);
            Assert.True(Simulator.Position.Z > highestSkinZ, $"the needle ended at {Simulator.Position}, below the skin (highest skin Z {highestSkinZ})");
        }
    }

    /// <summary>The single logged injection of <paramref name="fault"/> (the fault really happened).</summary>
    public FaultEvent Injected(string fault) => Assert.Single(Simulator.FaultLog, f => f.Fault == fault && f.Detail != "firmware answers again");

    public async ValueTask DisposeAsync()
    {
        await Fixture.DisposeAsync();
        await Simulator.DisposeAsync();
    }
}
