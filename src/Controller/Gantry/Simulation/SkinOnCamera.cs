using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>
/// The simulated world's one truth about pigment: the synthetic camera draws every tattoo the simulated skin carries
/// (earlier sessions' healed dots and today's new ones) where the skin really is, so detection, matching and the
/// camera's check of each dot see what they would see in the clinic.
/// </summary>
public static class SkinOnCamera
{
    /// <summary>Draws <paramref name="scalp"/>'s tattoos in <paramref name="scene"/> now and after each new one.</summary>
    public static void Show(SimulatedScalp scalp, SyntheticScene scene)
    {
        ArgumentNullException.ThrowIfNull(scalp);
        ArgumentNullException.ThrowIfNull(scene);
        Update(scalp, scene);
        scalp.Tattooed += (_, _) => Update(scalp, scene);
    }

    private static void Update(SimulatedScalp scalp, SyntheticScene scene)
    {
        var headFromScalp = scalp.HeadFromScalp;
        var tattoos = scalp.Tattoos;
        var visibility = scalp.TattooVisibility;
        var dots = new List<HealedDot>(tattoos.Count);
        for (var i = 0; i < tattoos.Count && i < visibility.Count; i++)
        {
            if (visibility[i] <= 0) continue; // lost: nothing shows
            var p = tattoos[i];
            var normalS = scalp.Skin.ClosestPoint(p, 3) is { } hit ? scalp.Skin.NormalAt(hit.Face, hit.U, hit.V) : new Vec3(0, 0, 1);
            var normalH = headFromScalp.Apply(normalS) - headFromScalp.Apply(Vec3.Zero);
            // Each dot's own look, fixed by its place in the record (a redraw never changes it): 0.25-0.5 mm, mid to dark.
            var h = (uint)((i * 2654435761u) ^ 0x9E3779B9u);
            dots.Add(new HealedDot(headFromScalp.Apply(p), normalH, 0.25 + ((h % 1000) / 1000.0 * 0.25), (0.5 + (((h / 1000) % 1000) / 1000.0 * 0.3)) * visibility[i]));
        }
        scene.HealedDots = dots;
    }
}
