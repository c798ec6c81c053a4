using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Treatments;

/// <summary>The camera's check of a placed dot: the new spot, found against the frame before the plunge, and its offset.</summary>
public class DotCheckTests
{
    private static readonly DotCheckOptions Options = new();

    [Theory]
    [InlineData(0.08, DotCheckResult.OnTarget)]
    [InlineData(0.45, DotCheckResult.OffTarget)]
    public void A_new_dot_is_found_among_the_old_spots_and_its_offset_measured(double offsetMm, DotCheckResult expected)
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 3);
        var region = DotSearchRegion.ForScene(scene);
        var (ax, ay) = SyntheticScene.SkinPatchSemiAxesMm;
        var (_, hy) = scene.StickerHalfExtentMm;
        var target = new Vec3(3, (hy + ay) / 2, 0);
        var normal = new Vec3(0, 0, 1);
        // An older dot 1.3 mm away, there before and after: it must not be taken for the new one.
        scene.HealedDots = [new HealedDot(target + new Vec3(1.3, 0, 0), normal, 0.35, 0.6)];
        var pose = SyntheticScene.RestCameraFromHead;
        var intrinsics = CameraIntrinsics.Synthetic();
        using var before = scene.RenderAt(pose, 1);
        var placed = target + new Vec3(offsetMm * 0.6, offsetMm * 0.8, 0);
        scene.HealedDots = [.. scene.HealedDots, new HealedDot(placed, normal, 0.35, 0.7)];
        using var after = scene.RenderAt(pose, 2);

        var spotsBefore = DotChecks.SpotsNear(before, pose, intrinsics, region, target, normal, 1.5);
        var spotsAfter = DotChecks.SpotsNear(after, pose, intrinsics, region, target, normal, 1.5);
        var m = DotChecks.Measure(spotsBefore, spotsAfter, target, Options);

        Assert.Equal(expected, m.Result);
        Assert.NotNull(m.OffsetH);
        Assert.True(Math.Abs(m.OffsetMm!.Value - offsetMm) < 0.06, $"measured {m.OffsetMm:0.000} mm, placed {offsetMm:0.000} mm off");
        Assert.True((target + m.OffsetH!.Value).DistanceTo(placed) < 0.06);
    }

    [Fact]
    public void A_dot_that_did_not_appear_is_not_seen_even_beside_old_spots()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 4);
        var region = DotSearchRegion.ForScene(scene);
        var (_, ay) = SyntheticScene.SkinPatchSemiAxesMm;
        var (_, hy) = scene.StickerHalfExtentMm;
        var target = new Vec3(-4, (hy + ay) / 2, 0);
        var normal = new Vec3(0, 0, 1);
        scene.HealedDots = [new HealedDot(target + new Vec3(0.5, 0.2, 0), normal, 0.35, 0.6)];
        var pose = SyntheticScene.RestCameraFromHead;
        using var before = scene.RenderAt(pose, 1);
        using var after = scene.RenderAt(pose, 2);

        var m = DotChecks.Measure(
            DotChecks.SpotsNear(before, pose, CameraIntrinsics.Synthetic(), region, target, normal, 1.5),
            DotChecks.SpotsNear(after, pose, CameraIntrinsics.Synthetic(), region, target, normal, 1.5), target, Options);

        Assert.Equal(DotCheckResult.NotSeen, m.Result);
        Assert.Null(m.OffsetH);
    }

    [Fact]
    public void Measure_takes_the_nearest_new_spot_within_the_search_radius()
    {
        var target = new Vec3(0, 0, 0);
        var old = new Vec3(0.1, 0, 0);
        var m = DotChecks.Measure([old], [old + new Vec3(0.05, 0, 0), new Vec3(0, 0.3, 0), new Vec3(0, 0.9, 0), new Vec3(3, 0, 0)], target, Options);
        Assert.Equal(DotCheckResult.OffTarget, m.Result); // 0.3 mm > 0.25: the spot beside the old one is the old one
        Assert.Equal(0.3, m.OffsetMm!.Value, 9);
        Assert.Equal(DotCheckResult.NotSeen, DotChecks.Measure([], [new Vec3(3, 0, 0)], target, Options).Result);
    }
}
