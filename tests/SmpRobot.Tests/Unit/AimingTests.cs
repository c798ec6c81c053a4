using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Unit;

public class AimingTests
{
    private static readonly PlannedDot Dot = new(0, "d1", 1.0, 2.0, 3.0, 1.0, 200, "charcoal-1");
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-23T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private sealed class StubPose(HeadPoseSample? sample, TimeProvider clock) : IHeadPoseSource
    {
        public string Description => "stub";

        public bool IsTracking => true;

        public TimeProvider Clock => clock;

        public HeadPoseSample? Latest(TimeSpan lookAhead = default) => sample;

        public event EventHandler? PoseUpdated { add { } remove { } }
    }

    private (AimedDot? Aim, string? Hold) AimWith(HeadPoseSample? pose) =>
        new Aiming(TestProfiles.Desk(), new StubPose(pose, _time)).Aim(Dot);

    private HeadPoseSample Pose(double quality = 1, double speed = 0, double originX = -100) =>
        new(RigidTransform.FromYawDegrees(0, new Vec3(originX, -100, -20)), _time.GetTimestamp(), quality, speed);

    [Fact]
    public void A_fresh_good_pose_gives_hover_and_depth_points_on_the_step_grid()
    {
        var (aim, hold) = AimWith(Pose());
        Assert.Null(hold);
        Assert.Equal(new Vec3(-99, -98, -17 + 1.5), aim!.HoverMm);  // skin z -17, hover 1.5 mm above
        Assert.Equal(new Vec3(-99, -98, -18), aim.DepthMm);         // depth 1 mm below the skin
    }

    [Fact]
    public void Every_gate_holds_with_its_reason()
    {
        Assert.Contains("not tracked", AimWith(null).Hold);
        var old = Pose();
        _time.Advance(TimeSpan.FromMilliseconds(101)); // profile limit: 100 ms
        Assert.Contains("stale", AimWith(old).Hold);
        Assert.Contains("quality", AimWith(Pose(quality: 0.4)).Hold);
        Assert.Contains("moving", AimWith(Pose(speed: 5.1)).Hold);
        Assert.Contains("envelope", AimWith(Pose(originX: -0.5)).Hold);
        Assert.Null(AimWith(Pose(quality: 0.5, speed: 5.0)).Hold); // limits are inclusive
    }

    [Fact]
    public void A_dot_on_sloping_skin_is_entered_beside_it_so_the_tip_ends_its_depth_below_it_along_the_normal()
    {
        // Skin 12° off the needle, sloping down towards +X: a vertical plunge from the dot itself would end
        // 1 mm · tan 12° = 0.21 mm beside the depth point under it.
        var tilt = 12 * Math.PI / 180;
        var normal = new Vec3(Math.Sin(tilt), 0, Math.Cos(tilt));
        var aiming = new Aiming(TestProfiles.Desk(), new StubPose(Pose(), _time)) { Normals = id => id == Dot.DotId ? normal : null };

        var (aim, hold) = aiming.Aim(Dot);

        Assert.Null(hold);
        var skin = new Vec3(-99, -98, -17);
        var underTheDot = skin - (normal * Dot.DepthMm);
        // Within the step grid (desk: 80 steps/mm, so 0.00625 mm of rounding per axis).
        Assert.True(aim!.DepthMm.DistanceTo(underTheDot) < 0.0095, $"depth point {aim.DepthMm}, expected {underTheDot}");
        // Straight down from the hover point: same X and Y, and the plunge from the skin above the depth point is depth / cos θ.
        Assert.Equal((aim.DepthMm.X, aim.DepthMm.Y), (aim.HoverMm.X, aim.HoverMm.Y));
        var entryZ = aim.HoverMm.Z - TestProfiles.Desk().HoverHeightMm;
        Assert.Equal(Dot.DepthMm / Math.Cos(tilt), entryZ - aim.DepthMm.Z, 2);
        // The entry is on the skin plane through the dot (its normal · offset is 0).
        var entry = aim.DepthMm with { Z = entryZ };
        Assert.Equal(0, Vec3.Dot(entry - skin, normal), 2);
    }
}
