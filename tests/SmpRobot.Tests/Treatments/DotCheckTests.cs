using OpenCvSharp;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Treatments;

/// <summary>
/// The camera's check of a placed dot on rendered frames: the new dot is where the skin darkened between the frame
/// before the plunge and the one after, its offset measured; stubble and older dots cancel out; where the frames
/// cannot tell, the dot is not checked rather than flagged.
/// </summary>
public class DotCheckTests
{
    private static readonly DotCheckOptions Options = new();
    private static readonly Vec3 Up = new(0, 0, 1);

    private static DotCheckMeasurement Check(Mat before, Mat after, DotSearchRegion region, Vec3 target, RigidTransform? afterPose = null) =>
        DotChecks.Measure(before, SyntheticScene.RestCameraFromHead, after, afterPose ?? SyntheticScene.RestCameraFromHead, CameraIntrinsics.Synthetic(), region, target, Up, Options);

    /// <summary>A point of the skin patch in front of the board, well inside the camera's view of the skin.</summary>
    private static Vec3 InView(SyntheticScene scene, double x)
    {
        var (_, ay) = SyntheticScene.SkinPatchSemiAxesMm;
        var (_, hy) = scene.StickerHalfExtentMm;
        return new Vec3(x, (hy + ay) / 2, 0);
    }

    [Theory]
    [InlineData(0.08, DotCheckResult.OnTarget)]
    [InlineData(0.45, DotCheckResult.OffTarget)]
    public void A_new_dot_is_found_among_the_old_spots_and_its_offset_measured(double offsetMm, DotCheckResult expected)
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 3);
        var region = DotSearchRegion.ForScene(scene);
        var target = InView(scene, 3);
        // An older dot 1.3 mm away, there before and after: it must not be taken for the new one.
        scene.HealedDots = [new HealedDot(target + new Vec3(1.3, 0, 0), Up, 0.35, 0.6)];
        using var before = scene.RenderAt(SyntheticScene.RestCameraFromHead, 1);
        var placed = target + new Vec3(offsetMm * 0.6, offsetMm * 0.8, 0);
        scene.HealedDots = [.. scene.HealedDots, new HealedDot(placed, Up, 0.35, 0.7)];
        using var after = scene.RenderAt(SyntheticScene.RestCameraFromHead, 2);

        var m = Check(before, after, region, target);

        Assert.Equal(expected, m.Result);
        Assert.NotNull(m.OffsetH);
        Assert.True(Math.Abs(m.OffsetMm!.Value - offsetMm) < 0.06, $"measured {m.OffsetMm:0.000} mm, placed {offsetMm:0.000} mm off");
        Assert.True((target + m.OffsetH!.Value).DistanceTo(placed) < 0.06);
    }

    /// <summary>
    /// The false "not seen" flags of the manual trial (7 of its 8): a dot placed within 0.2 mm of a stubble hair merged
    /// with it into one spot, which the old check took for the hair ("there before") and so saw nothing new. The new dot is
    /// the darkening it makes, however close the hair is.
    /// </summary>
    [Theory]
    [InlineData(0.10, 0.35)]
    [InlineData(0.18, 0.30)]
    [InlineData(0.02, 0.45)]
    public void A_dot_placed_on_or_beside_a_stubble_hair_is_seen_on_target(double fromHairMm, double diameterMm)
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 5);
        var region = DotSearchRegion.ForScene(scene);
        var pose = SyntheticScene.RestCameraFromHead;
        using var before = scene.RenderAt(pose, 1);
        var hair = Hair(scene, before, region);
        var target = hair + new Vec3(fromHairMm * 0.8, -fromHairMm * 0.6, 0);
        var placed = target + new Vec3(0.02, 0.01, 0);
        scene.HealedDots = [new HealedDot(placed, Up, diameterMm, 0.6)];
        using var after = scene.RenderAt(pose, 2);

        var m = Check(before, after, region, target);

        Assert.Equal(DotCheckResult.OnTarget, m.Result);
        Assert.True((target + m.OffsetH!.Value).DistanceTo(placed) < 0.06, $"measured {target + m.OffsetH!.Value}, placed at {placed}");
    }

    [Fact]
    public void A_dot_that_did_not_appear_is_not_seen_even_beside_old_spots()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 4);
        var region = DotSearchRegion.ForScene(scene);
        var target = InView(scene, -4);
        scene.HealedDots = [new HealedDot(target + new Vec3(0.5, 0.2, 0), Up, 0.35, 0.6)];
        using var before = scene.RenderAt(SyntheticScene.RestCameraFromHead, 1);
        using var after = scene.RenderAt(SyntheticScene.RestCameraFromHead, 2);

        var m = Check(before, after, region, target);

        Assert.Equal(DotCheckResult.NotSeen, m.Result);
        Assert.Null(m.OffsetH);
    }

    /// <summary>The trial's other false flag: a dot 0.02 mm inside the edge of the camera's view of the skin (the board's sticker and its margin), half of it beyond.</summary>
    [Fact]
    public void A_dot_at_the_edge_of_the_view_is_not_checked_rather_than_flagged()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 6);
        var region = DotSearchRegion.ForScene(scene);
        // Just inside the region's inner edge (the sticker plus its margin), on the board's plane.
        var target = new Vec3(-1, region.ExcludedHalfHeightMm + 0.05, 0);
        using var before = scene.RenderAt(SyntheticScene.RestCameraFromHead, 1);
        scene.HealedDots = [new HealedDot(target, Up, 0.4, 0.7)];
        using var after = scene.RenderAt(SyntheticScene.RestCameraFromHead, 2);
        scene.HealedDots = [];
        using var none = scene.RenderAt(SyntheticScene.RestCameraFromHead, 4);

        var cut = Check(before, after, region, target);
        var absent = Check(before, none, region, target);

        Assert.Equal(DotCheckResult.NotChecked, cut.Result);
        Assert.Contains("edge", cut.Why, StringComparison.Ordinal);
        // Nothing there, but part of the search disc is out of view: the dot may be there. Not checked, not "not seen".
        Assert.Equal(DotCheckResult.NotChecked, absent.Result);
        Assert.Contains("out of the camera's view", absent.Why, StringComparison.Ordinal);
    }

    [Fact]
    public void Nothing_new_where_the_skin_was_already_dark_is_not_checked()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 5);
        var region = DotSearchRegion.ForScene(scene);
        var target = InView(scene, 2);
        // An older dot right at the target: a new one there would not change the picture.
        scene.HealedDots = [new HealedDot(target, Up, 0.5, 0.8)];
        using var before = scene.RenderAt(SyntheticScene.RestCameraFromHead, 1);
        using var after = scene.RenderAt(SyntheticScene.RestCameraFromHead, 2);

        var m = Check(before, after, region, target);

        Assert.Equal(DotCheckResult.NotChecked, m.Result);
        Assert.Contains("already dark", m.Why, StringComparison.Ordinal);
    }

    [Fact]
    public void A_change_of_light_between_the_frames_is_not_a_dot()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 7);
        var region = DotSearchRegion.ForScene(scene);
        var target = InView(scene, -2);
        using var before = scene.RenderAt(SyntheticScene.RestCameraFromHead, 1);
        using var darker = new Mat();
        using (var same = scene.RenderAt(SyntheticScene.RestCameraFromHead, 2)) same.ConvertTo(darker, MatType.CV_8UC3, 0.8);
        scene.HealedDots = [new HealedDot(target + new Vec3(0.05, 0, 0), Up, 0.3, 0.55)];
        using var darkerWithDot = new Mat();
        using (var dotted = scene.RenderAt(SyntheticScene.RestCameraFromHead, 3)) dotted.ConvertTo(darkerWithDot, MatType.CV_8UC3, 0.8);

        Assert.Equal(DotCheckResult.NotSeen, Check(before, darker, region, target).Result);
        var seen = Check(before, darkerWithDot, region, target);
        Assert.Equal(DotCheckResult.OnTarget, seen.Result);
        Assert.InRange(seen.OffsetMm!.Value, 0, 0.08);
    }

    [Fact]
    public void The_head_moving_between_the_frames_is_followed_by_each_frames_pose()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 8);
        var region = DotSearchRegion.ForScene(scene);
        var target = InView(scene, 1);
        using var before = scene.RenderAt(SyntheticScene.RestCameraFromHead, 1);
        // 1.5 mm along and 1 degree about the camera's axis later: every stubble hair moved some pixels.
        var moved = Rotations.FromMatrix(Rotations.Multiply(Rotations.MatrixFromVector(new Vec3(0, 0, Math.PI / 180)), Rotations.RotationMatrix(SyntheticScene.RestCameraFromHead)),
            SyntheticScene.RestCameraFromHead.Translation + new Vec3(1.5, -0.5, 0));
        var placed = target + new Vec3(-0.12, 0.05, 0);
        scene.HealedDots = [new HealedDot(placed, Up, 0.35, 0.6)];
        using var after = scene.RenderAt(moved, 2);

        var m = Check(before, after, region, target, moved);

        Assert.Equal(DotCheckResult.OnTarget, m.Result);
        Assert.True((target + m.OffsetH!.Value).DistanceTo(placed) < 0.06, $"measured {target + m.OffsetH!.Value}, placed at {placed}");
    }

    [Fact]
    public void Judge_turns_what_was_found_into_the_check()
    {
        var target = new Vec3(1, 2, 0);
        Assert.Equal(DotCheckResult.OnTarget, DotChecks.Judge(new NewDotResult(NewDotOutcome.Found, target + new Vec3(0.25, 0, 0), 0.3, 0.3, ""), target, Options).Result);
        var off = DotChecks.Judge(new NewDotResult(NewDotOutcome.Found, target + new Vec3(0, 0.3, 0), 0.3, 0.3, ""), target, Options);
        Assert.Equal(DotCheckResult.OffTarget, off.Result);
        Assert.Equal(0.3, off.OffsetMm!.Value, 9);
        Assert.Equal(DotCheckResult.NotSeen, DotChecks.Judge(new NewDotResult(NewDotOutcome.NotFound, null, 0, 0, ""), target, Options).Result);
        var cannot = DotChecks.Judge(new NewDotResult(NewDotOutcome.CannotTell, null, 0, 0, "why"), target, Options);
        Assert.Equal(DotCheckResult.NotChecked, cannot.Result);
        Assert.Null(cannot.OffsetH);
        Assert.Equal("why", cannot.Why);
    }

    /// <summary>A stubble hair of the scene (a dark spot of its own texture) well inside the camera's view of the skin, on the board's plane.</summary>
    private static Vec3 Hair(SyntheticScene scene, Mat frame, DotSearchRegion region)
    {
        var (_, ay) = SyntheticScene.SkinPatchSemiAxesMm;
        var (_, hy) = scene.StickerHalfExtentMm;
        var spots = new HealedDotDetector(CameraIntrinsics.Synthetic()).Detect(frame, SyntheticScene.RestCameraFromHead, region);
        foreach (var d in spots.OrderBy(d => d.XPx))
        {
            var onPlane = d.OriginH + (d.DirectionH * (d.OriginH.Z / -d.DirectionH.Z));
            if (onPlane.Y > hy + 4 && onPlane.Y < ay - 8 && Math.Abs(onPlane.X) < 10 && d.DiameterMm < 0.3) return onPlane with { Z = 0 };
        }
        throw new InvalidOperationException("no stubble hair in view");
    }
}
