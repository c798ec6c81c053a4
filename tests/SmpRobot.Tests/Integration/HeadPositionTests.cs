using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Plans;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Tests.Integration;

/// <summary>Plans placed in several head positions (patches): the session holds between them, and every dot goes where its position puts it.</summary>
[Collection(ControllerCollection.Name)]
public class HeadPositionTests
{
    private static readonly SmpRobot.Machine.MachineProfile Profile = ControllerFixture.Profile;

    /// <summary>
    /// A flat demo patch split in two: the first half in the nominal pose of patch 1, the second half given in
    /// the head frame as it is before the head is turned 60° about a centre 90 mm below the skin (patch 2), so that
    /// once turned it lies flat under the needle again.
    /// </summary>
    private static Plan TwoPositions()
    {
        var flat = DemoPlanGenerator.Generate(30, seed: 21);
        var turn = Rotations.FromRotationVector(new Vec3(60 * Math.PI / 180, 0, 0), Vec3.Zero);
        var centre = new Vec3(0, 0, -90);
        var pose = Rotations.FromRotationVector(new Vec3(60 * Math.PI / 180, 0, 0), centre - turn.Apply(centre));
        var inverse = Rotations.Inverse(pose);
        var plan = new Plan { Name = "two head positions", Units = "mm" };
        plan.Patches.Add(new PlanPatch { Number = 1, Instruction = "Head upright", HeadPose = DesignPlans.ToMessage(RigidTransform.Identity) });
        plan.Patches.Add(new PlanPatch { Number = 2, Instruction = "Tilt the head back 60° (chin up)", HeadPose = DesignPlans.ToMessage(pose) });
        for (var i = 0; i < flat.Dots.Count; i++)
        {
            var dot = flat.Dots[i].Clone();
            dot.Patch = i < 15 ? 1u : 2u;
            if (dot.Patch == 2)
            {
                var p = inverse.Apply(new Vec3(dot.XMm, dot.YMm, dot.ZMm));
                (dot.XMm, dot.YMm, dot.ZMm) = (p.X, p.Y, p.Z);
            }
            plan.Dots.Add(dot);
        }
        return plan;
    }

    [Fact]
    public async Task A_plan_in_two_head_positions_holds_between_them_saying_how_to_turn_the_head_and_places_each_dot_once_where_its_position_puts_it()
    {
        var plan = TwoPositions();
        // Without its head position the second half is out of the machine's reach: the patch is what makes it placeable.
        var nominal = plan.Clone();
        foreach (var d in nominal.Dots) d.Patch = 0;
        nominal.Patches.Clear();
        Assert.Contains(new SmpRobot.Machine.PlanValidator(Profile).Validate(nominal).Violations, v => v.Rule == "envelope");
        Assert.True(new SmpRobot.Machine.PlanValidator(Profile).Validate(plan).IsValid);

        await using var c = await ControllerFixture.StartAsync(timeScale: 100);
        await c.HomeAsync();
        await c.StartHeartbeatAsync();
        var session = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan });
        await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id });

        var held = await c.WaitForAsync(session.Id, ControllerFixture.IsEnded);
        Assert.Equal(SessionState.Paused, held.State);
        Assert.Equal(15, held.Dots.Placed);
        Assert.Contains("head position 1 of 2 is done; next, head position 2 of 2: Tilt the head back 60° (chin up)", held.Reason, StringComparison.Ordinal);
        Assert.Equal(0, held.Dots.InDoubt + held.Dots.Commanded);
        Assert.False(c.Simulator.SpindleOn);

        await c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id });
        var done = await c.WaitForAsync(session.Id, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.Completed, done.State);
        Assert.Equal(30, done.Dots.Placed);
        // Every dot plunged once, at the depth point of its own head position (patch 2's flat again once turned).
        Assert.All(MotionTruth.PlacementsPerDot(plan, Profile, c.Simulator.MotionRecord), p => Assert.True(p.Value == 1, $"dot {p.Key} was placed {p.Value} times"));
        var targets = MotionTruth.DepthTargets(plan, Profile);
        var flat = DemoPlanGenerator.Generate(30, seed: 21);
        var head = Profile.FixedHead.ToTransform();
        foreach (var d in flat.Dots)
        {
            var expected = head.Apply(new Vec3(d.XMm, d.YMm, d.ZMm - d.DepthMm));
            Assert.True(targets[d.Id].DistanceTo(expected) < 0.01, $"dot {d.Id}: {targets[d.Id]} vs {expected}");
        }
    }
}
