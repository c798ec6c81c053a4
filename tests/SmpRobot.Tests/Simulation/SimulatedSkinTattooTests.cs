using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Simulation;

/// <summary>The simulated person keeps the dots placed in their skin, between runs too, and the synthetic camera draws them.</summary>
public sealed class SimulatedSkinTattooTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("smp-skin-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void A_plunge_below_the_skin_with_the_drive_on_leaves_a_tattoo_where_the_needle_entered_and_nothing_else_does()
    {
        var scalp = SimulatedScalp.SyntheticHead(Rotations.FromRotationVector(new Vec3(0, 0, 0.05), new Vec3(2, -1, 0)));
        var pose = ControllerFixture_Pose();
        scalp.GantryFromHeadAt = _ => pose;
        var skin = scalp.SkinAt(-100, -100, 0)!.Value;

        scalp.NeedleStopped(skin.Point + new Vec3(0, 0, 3), skin.Point - new Vec3(0, 0, 0.8), 0);   // a plunge to 0.8 mm
        scalp.NeedleStopped(skin.Point - new Vec3(0, 0, 0.8), skin.Point + new Vec3(0, 0, 3), 0);   // its retract
        scalp.NeedleStopped(skin.Point + new Vec3(0, 0, 5), skin.Point + new Vec3(0, 0, 0.5), 0);   // stops above the skin

        var tattoo = Assert.Single(scalp.Tattoos);
        // In S, on the skin nearest the tip (the pigment): 0.8 mm from the tip, within the slope's offset of the entry point.
        var tipS = Rotations.Inverse(pose * scalp.HeadFromScalp).Apply(skin.Point - new Vec3(0, 0, 0.8));
        Assert.Equal(scalp.Skin.ClosestPoint(tipS, 5)!.Value.Point, tattoo);
        var inG = (pose * scalp.HeadFromScalp).Apply(tattoo);
        Assert.True(inG.DistanceTo(skin.Point) < 0.8, $"{inG} vs {skin.Point}");
    }

    [Fact]
    public void The_tattoos_are_kept_in_a_file_and_read_back_by_a_later_run_and_the_synthetic_camera_draws_them()
    {
        var file = Path.Combine(_folder, "skin.txt");
        var first = SimulatedScalp.SyntheticHead();
        first.LoadTattoos(file);
        first.AddTattoo(new Vec3(1, 2, 99));
        first.AddTattoo(new Vec3(-3.25, 4.5, 98.75));

        var later = SimulatedScalp.SyntheticHead(Rotations.FromRotationVector(new Vec3(0, 0, 0.05), new Vec3(4, 0, 0)));
        later.LoadTattoos(file);
        Assert.Equal(first.Tattoos, later.Tattoos);

        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic());
        SkinOnCamera.Show(later, scene);
        Assert.Equal(2, scene.HealedDots.Count);
        // Drawn where the board sits today: the later head's T_HS.
        Assert.True(scene.HealedDots[0].PointH.DistanceTo(later.HeadFromScalp.Apply(new Vec3(1, 2, 99))) < 1e-9);
        later.AddTattoo(new Vec3(0, 0, 100));
        Assert.Equal(3, scene.HealedDots.Count);
        Assert.Equal(3, File.ReadAllLines(file).Length);
    }

    [Fact]
    public void The_camera_measures_each_tattoos_skin_normal_once_and_draws_it_as_before()
    {
        var scalp = SimulatedScalp.SyntheticHead();
        scalp.AddTattoo(new Vec3(1, 2, 99));
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic());
        var measured = new List<Vec3>();
        SkinOnCamera.Show(scalp, scene, p =>
        {
            measured.Add(p);
            return new Vec3(p.X, p.Y, p.Z).Normalized();
        });
        var added = Enumerable.Range(0, 60).Select(i => new Vec3(-15 + (i % 10 * 3), -9 + (i / 10 * 3), 95)).ToList();
        foreach (var p in added)
        {
            scalp.AddTattoo(p);
        }
        // One search of the skin per tattoo (the first on showing, each later one as it came), not one per tattoo drawn so far at each new one.
        Assert.Equal([new Vec3(1, 2, 99), .. added], measured);
        Assert.Equal(61, scene.HealedDots.Count);
        for (var i = 0; i < scalp.Tattoos.Count; i++)
        {
            var p = scalp.Tattoos[i];
            Assert.Equal(scalp.HeadFromScalp.Apply(p), scene.HealedDots[i].PointH);
            var normalH = scalp.HeadFromScalp.Apply(p.Normalized()) - scalp.HeadFromScalp.Apply(Vec3.Zero);
            Assert.True(scene.HealedDots[i].NormalH.DistanceTo(normalH) < 1e-12);
        }

        // The board moved on the head: every dot is drawn at its new place with the next tattoo, none measured again.
        var looks = scene.HealedDots.Select(d => (d.DiameterMm, d.Darkness)).ToList();
        scalp.HeadFromScalp = Rotations.FromRotationVector(new Vec3(0, 0, 0.05), new Vec3(4, 0, 0)) * scalp.HeadFromScalp;
        scalp.AddTattoo(new Vec3(0, 0, 100));
        Assert.Equal(62, measured.Count);
        Assert.Equal(62, scene.HealedDots.Count);
        Assert.All(scalp.Tattoos.Zip(scene.HealedDots), x => Assert.True(scalp.HeadFromScalp.Apply(x.First).DistanceTo(x.Second.PointH) < 1e-9));
        Assert.Equal(looks, scene.HealedDots.Take(61).Select(d => (d.DiameterMm, d.Darkness)));

        // Years on: the lost ones are no longer drawn, the faded ones paler; nothing is measured again.
        var before = scene.HealedDots.ToList();
        scalp.AgeTattoos(0.3, 0.2, seed: 5);
        var visibility = scalp.TattooVisibility;
        Assert.Equal(62, measured.Count);
        Assert.InRange(visibility.Count(v => v <= 0), 1, 30);
        Assert.Contains(visibility, v => v is > 0 and < 1);
        Assert.Equal(Enumerable.Range(0, 62).Where(i => visibility[i] > 0).Select(i => before[i] with { Darkness = before[i].Darkness * visibility[i] }), scene.HealedDots);

        // The same picture as the mesh's own normals give when shown at once, tattoo by tattoo or aged.
        using var again = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic());
        using var fresh = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic());
        var other = SimulatedScalp.SyntheticHead();
        SkinOnCamera.Show(other, again);
        foreach (var p in scalp.Tattoos) other.AddTattoo(p);
        using (var whole = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic()))
        {
            SkinOnCamera.Show(other, whole);
            Assert.Equal(whole.HealedDots, again.HealedDots);
        }
        other.AgeTattoos(0.3, 0.2, seed: 5);
        SkinOnCamera.Show(other, fresh);
        Assert.Equal(62 - visibility.Count(v => v <= 0), fresh.HealedDots.Count);
        Assert.Equal(fresh.HealedDots, again.HealedDots);
    }

    private static RigidTransform ControllerFixture_Pose() => Integration.ControllerFixture.Profile.FixedHead.ToTransform();
}
