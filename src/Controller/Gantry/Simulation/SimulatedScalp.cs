using SmpRobot.Geometry;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>
/// The person's scalp under the simulated gantry, for its probe input: a head mesh in the scalp frame S, placed in
/// the head frame H by the true T_HS (where the board really sits on this head today), and in the gantry frame by
/// the true head pose T_GH at each simulated moment (a still head on its stand, or the synthetic camera's scripted
/// motion), so a breathing head is probed where it is at the moment of contact.
/// </summary>
/// <param name="skin">Builds the skin in S (finer than any model a design uses, as a real scalp is smoother than its scan); built on first use.</param>
/// <param name="headFromScalp">T_HS, the truth that surface registration must find.</param>
public sealed class SimulatedScalp(Func<TriangleMesh> skin, RigidTransform headFromScalp) : ISimulatedSkin
{
    private Func<double, RigidTransform?> _gantryFromHeadAt = _ => null;
    private volatile object _headFromScalp = headFromScalp;
    private readonly Lazy<TriangleMesh> _skin = new(skin ?? throw new ArgumentNullException(nameof(skin)));
    private readonly Lock _tattooGate = new();
    private readonly List<Vec3> _tattoos = [];
    private readonly List<double> _visibility = [];
    private int _ageings;

    /// <summary>
    /// Where the pigment shows on this skin, frame S (the skin point nearest the needle's tip at the end of each plunge
    /// made with the drive on): the dots this person carries, earlier sessions' included when they were loaded
    /// (<see cref="LoadTattoos"/>). The synthetic camera draws them; placement error and all, this is the truth.
    /// </summary>
    public IReadOnlyList<Vec3> Tattoos { get { lock (_tattooGate) return _tattoos.ToArray(); } }

    /// <summary>
    /// How much of each tattoo of <see cref="Tattoos"/> (same order) still shows: 1 as placed, less once faded, 0 gone
    /// (<see cref="AgeTattoos"/>). Years after a treatment some dots fade and some are lost; a touch-up finds them.
    /// </summary>
    public IReadOnlyList<double> TattooVisibility { get { lock (_tattooGate) return _visibility.ToArray(); } }

    /// <summary>
    /// Ages the tattoos the skin carries now, years on: of each, with a seeded draw, a fraction <paramref name="goneFraction"/>
    /// is lost (shows nothing) and a fraction <paramref name="fadedFraction"/> fades to <paramref name="fadedVisibility"/> of its
    /// look; the rest are as they were. Deterministic for a seed. Tattoos added later are fresh.
    /// </summary>
    public void AgeTattoos(double fadedFraction, double goneFraction, int seed, double fadedVisibility = 0.3)
    {
        if (!(fadedFraction is >= 0 and <= 1) || !(goneFraction is >= 0 and <= 1) || fadedFraction + goneFraction > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(fadedFraction), "the faded and gone fractions are each 0-1 and together at most 1");
        }
        if (!(fadedVisibility is > 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(fadedVisibility), "a faded tattoo shows between 0 and 1 of its look");
        lock (_tattooGate)
        {
#pragma warning disable CA5394 // a seeded simulation of aging skin, not security
            var random = new Random(seed);
            for (var i = 0; i < _visibility.Count; i++)
            {
                var u = random.NextDouble();
                _visibility[i] = u < goneFraction ? 0 : u < goneFraction + fadedFraction ? fadedVisibility * _visibility[i] : _visibility[i];
            }
#pragma warning restore CA5394
            _ageings++;
        }
        Tattooed?.Invoke(this, EventArgs.Empty);
    }

    /// <summary>
    /// The tattoos from the <paramref name="start"/>-th on (those added since a reader had <paramref name="start"/>), in
    /// order, each with how much of it shows, and how many times the skin has aged (<see cref="AgeTattoos"/>): a reader
    /// that saw fewer must read <see cref="TattooVisibility"/> again for the tattoos it already had.
    /// </summary>
    internal (IReadOnlyList<(Vec3 PointS, double Visibility)> Added, int Ageings) TattoosFrom(int start)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        lock (_tattooGate)
        {
            var added = new List<(Vec3, double)>(Math.Max(0, _tattoos.Count - start));
            for (var i = start; i < _tattoos.Count; i++) added.Add((_tattoos[i], _visibility[i]));
            return (added, _ageings);
        }
    }

    /// <summary>Raised after a tattoo is added (on the simulator's thread, under its lock: handlers must be quick; read <see cref="Tattoos"/>).</summary>
    public event EventHandler? Tattooed;

    /// <summary>Where the skin's tattoos are kept between runs (a person comes back weeks later); null: not kept.</summary>
    public string? TattooFile { get; set; }

    /// <summary>Adds a tattoo at <paramref name="pointS"/> (appended to <see cref="TattooFile"/> when set).</summary>
    public void AddTattoo(Vec3 pointS)
    {
        lock (_tattooGate)
        {
            _tattoos.Add(pointS);
            _visibility.Add(1);
            if (TattooFile is { } file)
            {
                File.AppendAllText(file, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{pointS.X:0.#####} {pointS.Y:0.#####} {pointS.Z:0.#####}\n"));
            }
        }
        Tattooed?.Invoke(this, EventArgs.Empty);
    }

    /// <summary>Loads the tattoos kept in <paramref name="file"/> (one "x y z" line each, mm, frame S) and keeps adding to it.</summary>
    public void LoadTattoos(string file)
    {
        ArgumentNullException.ThrowIfNull(file);
        lock (_tattooGate)
        {
            if (File.Exists(file))
            {
                foreach (var line in File.ReadLines(file))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length != 3) continue;
                    _tattoos.Add(new Vec3(double.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture),
                        double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), double.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture)));
                    _visibility.Add(1);
                }
            }
            TattooFile = file;
        }
    }

    /// <summary>
    /// Called by the simulator when a move ends with the drive on: a plunge whose tip is below the skin leaves a tattoo
    /// on the skin nearest its tip, at that moment.
    /// </summary>
    internal void NeedleStopped(Vec3 from, Vec3 tipG, double simSeconds)
    {
        if (!(tipG.Z < from.Z - 1e-6)) return; // only the end of a downward move
        if (SkinAt(tipG.X, tipG.Y, simSeconds) is not { } skin || tipG.Z >= skin.Point.Z) return;
        if (GantryFromHeadAt(simSeconds) is not { } gantryFromHead) return;
        // The pigment lies at the tip; it shows on the skin straight above it along the skin's normal (a tilted needle
        // enters beside the dot, and the dot is where the pigment is).
        var tipS = Rotations.Inverse(gantryFromHead * HeadFromScalp).Apply(tipG);
        var shownS = Skin.ClosestPoint(tipS, 5) is { } shown ? shown.Point : Rotations.Inverse(gantryFromHead * HeadFromScalp).Apply(skin.Point);
        if (Pigment(shownS) is not { } pigmentS) return; // a dry plunge: no pigment
        AddTattoo(pigmentS == shownS ? shownS : Skin.ClosestPoint(pigmentS, 5)?.Point ?? pigmentS);
    }

    /// <summary>
    /// Fault injection for tests: where the pigment of a plunge shows, given where it would (frame S). The point itself by
    /// default; another point for a needle that slid on the skin (kept on the skin), null for a plunge that left no
    /// pigment (a dry cartridge). Called on the simulator's thread, under its lock: keep it quick.
    /// </summary>
    public Func<Vec3, Vec3?> Pigment
    {
        get => Volatile.Read(ref _pigment);
        set => Volatile.Write(ref _pigment, value ?? throw new ArgumentNullException(nameof(value)));
    }

    private Func<Vec3, Vec3?> _pigment = p => p;

    /// <summary>The skin mesh, frame S (built on first use: a controller that never probes never pays for it).</summary>
    public TriangleMesh Skin => _skin.Value;

    /// <summary>
    /// T_HS: the skin's frame S in the head frame H. Set it to move the board on the head mid-session (a board that
    /// slipped): the skin moves against the head frame the camera tracks, as it would in the clinic.
    /// </summary>
    public RigidTransform HeadFromScalp
    {
        get => (RigidTransform)_headFromScalp;
        set => _headFromScalp = value;
    }

    /// <summary>
    /// The true head pose T_GH at a simulated moment (seconds since the simulator's power-on), or null where there is
    /// no head (the probe then touches nothing). Set by whoever composes the simulated world, once the head exists.
    /// </summary>
    public Func<double, RigidTransform?> GantryFromHeadAt
    {
        get => Volatile.Read(ref _gantryFromHeadAt);
        set => Volatile.Write(ref _gantryFromHeadAt, value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>The synthetic adult head (bundled with the designs) at 1.5 mm triangles, with the nominal T_HS of its designs (the vertex at the origin of H, the head's centre straight below).</summary>
    /// <param name="boardOffset">Where the board sits on the head today against where the designs assume it (applied in H); identity: as assumed.</param>
    public static SimulatedScalp SyntheticHead(RigidTransform? boardOffset = null) =>
        new(() => Treatment.Heads.SyntheticHead.Generate(6).Mesh, (boardOffset ?? RigidTransform.Identity) * SyntheticHeadNominal.Value);

    // The designs' model is the 3 mm mesh (hardware/heads/): their nominal T_HS comes from its landmarks.
    private static readonly Lazy<RigidTransform> SyntheticHeadNominal = new(() => NominalHeadFromScalp(Treatment.Heads.SyntheticHead.Generate(5).Landmarks));

    /// <summary>T_HS of a design on the synthetic head as `smp design plan` writes it: S's axes, the vertex at H's origin.</summary>
    public static RigidTransform NominalHeadFromScalp(HeadLandmarks landmarks)
    {
        ArgumentNullException.ThrowIfNull(landmarks);
        var top = (landmarks.Vertex - landmarks.Center).Length;
        return new RigidTransform(1, 0, 0, 0, 1, 0, 0, 0, 1, new Vec3(0, 0, -top) - landmarks.Center);
    }

    /// <inheritdoc />
    public double? SkinZMm(double xMm, double yMm, double simSeconds) => SkinAt(xMm, yMm, simSeconds)?.Point.Z;

    /// <summary>
    /// The skin point under (<paramref name="xMm"/>, <paramref name="yMm"/>) at <paramref name="simSeconds"/> and its outward
    /// unit normal, both in the gantry frame; null where there is no skin below (or no head).
    /// </summary>
    public (Vec3 Point, Vec3 Normal)? SkinAt(double xMm, double yMm, double simSeconds)
    {
        if (GantryFromHeadAt(simSeconds) is not { } gantryFromHead) return null;
        var gantryFromScalp = gantryFromHead * HeadFromScalp;
        var scalpFromGantry = Rotations.Inverse(gantryFromScalp);
        // A vertical line coming down from well above the machine's travel.
        var origin = scalpFromGantry.Apply(new Vec3(xMm, yMm, 100));
        var down = scalpFromGantry.Apply(new Vec3(xMm, yMm, 99)) - origin;
        if (Skin.Raycast(origin, down) is not { } hit) return null;
        var normal = gantryFromScalp.Apply(Skin.NormalAt(hit)) - gantryFromScalp.Apply(Vec3.Zero);
        return (gantryFromScalp.Apply(hit.Point), normal.Normalized());
    }
}
