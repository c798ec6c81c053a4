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

    private static RigidTransform ControllerFixture_Pose() => Integration.ControllerFixture.Profile.FixedHead.ToTransform();
}
