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
    public static void Show(SimulatedScalp scalp, SyntheticScene scene) => Show(scalp, scene, null);

    /// <summary>
    /// <see cref="Show(SimulatedScalp, SyntheticScene)"/>, with the skin's normal at a tattoo (frame S) from
    /// <paramref name="normalAtS"/> (tests count the calls); null: from the skin mesh.
    /// </summary>
    internal static void Show(SimulatedScalp scalp, SyntheticScene scene, Func<Vec3, Vec3>? normalAtS)
    {
        ArgumentNullException.ThrowIfNull(scalp);
        ArgumentNullException.ThrowIfNull(scene);
        var drawing = new Drawing(scalp, scene, normalAtS ?? (p => SkinNormal(scalp, p)));
        drawing.Update();
        scalp.Tattooed += (_, _) => drawing.Update();
    }

    /// <summary>The skin's smooth normal nearest <paramref name="pointS"/> (frame S); straight up where no skin is within 3 mm.</summary>
    private static Vec3 SkinNormal(SimulatedScalp scalp, Vec3 pointS) =>
        scalp.Skin.ClosestPoint(pointS, 3) is { } hit ? scalp.Skin.NormalAt(hit.Face, hit.U, hit.V) : new Vec3(0, 0, 1);

    /// <summary>
    /// What the scene shows of one scalp, kept between tattoos: each tattoo's normal is found once, when it is first
    /// drawn (a search of the skin mesh), so a new tattoo costs one search however many the skin carries. The event that
    /// brings a new one runs on the simulator's thread under its lock: only the new tattoo is read and measured there,
    /// and the dots already drawn are copied, not measured again. All of them are drawn again, with no search, only when
    /// the board moved on the head (T_HS) or the skin aged (<see cref="SimulatedScalp.AgeTattoos"/>).
    /// </summary>
    private sealed class Drawing(SimulatedScalp scalp, SyntheticScene scene, Func<Vec3, Vec3> normalAtS)
    {
        private readonly Lock _gate = new();
        // Every tattoo read so far, by its place in the record; its normal once it was first drawn (a lost one never is).
        private readonly List<(Vec3 PointS, Vec3? NormalS, double Visibility)> _tattoos = [];
        private readonly List<HealedDot> _drawn = [];
        private int _drawnUpTo;
        private RigidTransform _drawnWith;
        private int _ageings;

        public void Update()
        {
            lock (_gate)
            {
                var (added, ageings) = scalp.TattoosFrom(_tattoos.Count);
                foreach (var (p, visibility) in added) _tattoos.Add((p, null, visibility));
                var headFromScalp = scalp.HeadFromScalp;
                if (ageings != _ageings)
                {
                    // The skin aged: the tattoos read before show less now (or nothing).
                    var visibility = scalp.TattooVisibility;
                    for (var i = 0; i < _tattoos.Count && i < visibility.Count; i++) _tattoos[i] = _tattoos[i] with { Visibility = visibility[i] };
                    _ageings = ageings;
                    _drawnUpTo = 0;
                }
                if (headFromScalp != _drawnWith) _drawnUpTo = 0;
                if (_drawnUpTo == 0) _drawn.Clear();
                _drawnWith = headFromScalp;
                for (var i = _drawnUpTo; i < _tattoos.Count; i++)
                {
                    var (p, normal, visibility) = _tattoos[i];
                    if (visibility <= 0) continue; // lost: nothing shows
                    var normalS = normal ?? normalAtS(p);
                    if (normal is null) _tattoos[i] = (p, normalS, visibility);
                    var normalH = headFromScalp.Apply(normalS) - headFromScalp.Apply(Vec3.Zero);
                    // Each dot's own look, fixed by its place in the record (a redraw never changes it): 0.25-0.5 mm, mid to dark.
                    var h = (uint)((i * 2654435761u) ^ 0x9E3779B9u);
                    _drawn.Add(new HealedDot(headFromScalp.Apply(p), normalH, 0.25 + ((h % 1000) / 1000.0 * 0.25), (0.5 + (((h / 1000) % 1000) / 1000.0 * 0.3)) * visibility));
                }
                _drawnUpTo = _tattoos.Count;
                scene.HealedDots = _drawn;
            }
        }
    }
}
