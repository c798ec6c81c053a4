using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Integration;

/// <summary>What physically happened, read from the simulator's motion record.</summary>
internal static class MotionTruth
{
    /// <summary>
    /// Plunges: straight-down moves that end below the skin surface of the dot at their XY. Every
    /// other straight-down move must end above the highest skin point of the plan (travel), else
    /// the needle entered skin at an unplanned place and the assertion fails.
    /// </summary>
    public static IReadOnlyList<(SimMotion Motion, string DotId)> Plunges(IEnumerable<SimMotion> record, Plan plan, MachineProfile profile)
    {
        var targets = DepthTargets(plan, profile);
        var depthById = plan.Dots.ToDictionary(d => d.Id, d => d.DepthMm);
        var byXy = targets.ToDictionary(t => Key(t.Value), t => t.Key);
        var highestSkinZ = targets.Max(t => t.Value.Z + depthById[t.Key]);
        var plunges = new List<(SimMotion, string)>();
        foreach (var m in record.Where(m => m.From.X == m.To.X && m.From.Y == m.To.Y && m.To.Z < m.From.Z))
        {
            if (byXy.TryGetValue(Key(m.To), out var id))
            {
                // At a dot's XY: a plunge when it went below that dot's skin; a move cut short above it is harmless.
                if (m.To.Z < targets[id].Z + depthById[id] - 1e-9) plunges.Add((m, id));
            }
            else
            {
                Assert.True(m.To.Z > highestSkinZ, $"{m} went below the skin at a place that is no dot of the plan");
            }
        }
        return plunges;
    }

    private static (double, double) Key(Vec3 p) => (Math.Round(p.X, 4), Math.Round(p.Y, 4));

    /// <summary>The gantry-frame depth point of each dot for the profile's still head (turned for the dot's head position), on the step grid.</summary>
    public static Dictionary<string, Vec3> DepthTargets(Plan plan, MachineProfile profile)
    {
        var head = profile.FixedHead.ToTransform();
        var patches = SmpRobot.Controller.Plans.PlanPatches.Of(plan);
        var grid = new StepGrid(profile.StepsPerMm);
        return plan.Dots.ToDictionary(d => d.Id, d =>
        {
            var skin = (head * patches.HeadPose((int)d.Patch)).Apply(new Vec3(d.XMm, d.YMm, d.ZMm));
            return grid.Quantise(skin with { Z = skin.Z - d.DepthMm });
        });
    }

    /// <summary>For each dot, how many plunges reached its depth point (and never deeper).</summary>
    public static Dictionary<string, int> PlacementsPerDot(Plan plan, MachineProfile profile, IEnumerable<SimMotion> record)
    {
        var targets = DepthTargets(plan, profile);
        var counts = plan.Dots.ToDictionary(d => d.Id, _ => 0);
        foreach (var (m, id) in Plunges(record, plan, profile))
        {
            Assert.True(m.To.Z >= targets[id].Z - 1e-9, $"{m} went deeper than dot {id}'s depth {targets[id].Z}");
            if (m.Completed && Math.Abs(m.To.Z - targets[id].Z) < 1e-9) counts[id]++;
        }
        return counts;
    }
}
