using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision.Calibration;

/// <summary>
/// The physical truth behind <see cref="SimulatedGantryMarkerCamera"/>: where the camera really is,
/// how the calibration marker sits on the needle head, and where the touch plate lies. A calibration
/// must find <see cref="GantryFromCamera"/> without being told.
/// </summary>
/// <param name="GantryFromCamera">The true T_GC (differs from a profile's nominal mounting).</param>
/// <param name="MarkerFromTipGantryMm">Marker origin minus needle tip, in gantry axes, mm (the head carries the marker beside and above the tip).</param>
/// <param name="GantryFromMarkerRotation">The marker's fixed orientation on the head (rotation only; the gantry only translates it).</param>
/// <param name="GantryFromTouchPlate">Pose of the touch plate (the same board design, lying flat on the table) in gantry coordinates.</param>
public sealed record GantryMarkerTruth(RigidTransform GantryFromCamera, Vec3 MarkerFromTipGantryMm, RigidTransform GantryFromMarkerRotation, RigidTransform GantryFromTouchPlate)
{
    // The touch plate relative to the nominal camera (the sim profile's layout).
    private static readonly Vec3 TouchPlateFromNominalCameraMm = new(102 - 77.200536, 98 - 125.935679, 12 - 124.469015);

    /// <summary>
    /// A truth for the synthetic camera of the sim profile: <paramref name="nominalGantryFromCamera"/>
    /// moved by (1.2, −0.8, 0.6) mm and turned by 0.5° (so a calibration has something to find), the
    /// marker level (axes along the gantry's) 12 mm to the −X side of and 10 mm above the tip, and
    /// the touch plate flat on the table in the middle of the view, 112.5 mm below the nominal camera
    /// (at (102, 98, 12) mm from a gantry's minimum corner, wherever the firmware puts its zero).
    /// </summary>
    public static GantryMarkerTruth Default(RigidTransform nominalGantryFromCamera)
    {
        const double deg = Math.PI / 180;
        var turn = Rotations.MatrixFromVector(new Vec3(0.3, -0.25, 0.3) * (0.5 * deg / Math.Sqrt(0.3 * 0.3 + 0.25 * 0.25 + 0.3 * 0.3)));
        var rotation = Rotations.Multiply(turn, Rotations.RotationMatrix(nominalGantryFromCamera));
        var truth = Rotations.FromMatrix(rotation, nominalGantryFromCamera.Translation + new Vec3(1.2, -0.8, 0.6));
        return new GantryMarkerTruth(truth, new Vec3(-12, 0, 10), RigidTransform.Identity, new RigidTransform(1, 0, 0, 0, 1, 0, 0, 0, 1, nominalGantryFromCamera.Translation + TouchPlateFromNominalCameraMm));
    }

    /// <summary>The same truth with the camera moved by <paramref name="shiftMm"/> (gantry axes): a bumped camera.</summary>
    public GantryMarkerTruth WithCameraMovedBy(Vec3 shiftMm) =>
        this with { GantryFromCamera = Rotations.FromMatrix(Rotations.RotationMatrix(GantryFromCamera), GantryFromCamera.Translation + shiftMm) };

    /// <summary>The needle tip in the marker frame M, mm (what a calibration's tip offset should come out as).</summary>
    public Vec3 TipInMarkerMm => Rotations.Inverse(GantryFromMarkerRotation).Apply(Vec3.Zero - MarkerFromTipGantryMm);

    /// <summary>T_GM with the needle tip at gantry position <paramref name="tipMm"/>.</summary>
    public RigidTransform GantryFromMarker(Vec3 tipMm) =>
        Rotations.FromMatrix(Rotations.RotationMatrix(GantryFromMarkerRotation), tipMm + MarkerFromTipGantryMm);

    /// <summary>T_CM = T_GC⁻¹ · T_GM with the tip at <paramref name="tipMm"/>.</summary>
    public RigidTransform CameraFromMarker(Vec3 tipMm) => Rotations.Inverse(GantryFromCamera) * GantryFromMarker(tipMm);
}

/// <summary>A touch-off target of the simulated touch plate: the plate's corner and where it truly is in gantry coordinates.</summary>
/// <param name="CornerId">ChArUco corner id on the plate.</param>
/// <param name="GantryMm">True gantry position of that corner (the simulated engineer jogs the tip exactly there).</param>
public sealed record TouchPoint(int CornerId, Vec3 GantryMm);

/// <summary>
/// A calibration camera that can show a touch plate for tip touch-offs. Only the simulation has one:
/// it knows where the plate truly is, so its "engineer" can jog the tip onto a corner exactly.
/// </summary>
public interface ISimulatedTouchPlate
{
    /// <summary>True: frames show the touch plate on the table instead of the needle-head marker.</summary>
    bool ShowTouchPlate { get; set; }

    /// <summary>Corners far apart on the plate, with their true gantry positions.</summary>
    IReadOnlyList<TouchPoint> TouchPoints();

    /// <summary>The board printed on the plate.</summary>
    MarkerBoard PlateBoard { get; }
}

/// <summary>A fault of the simulated marker: while the tip is within 0.05 mm of <paramref name="AtTipMm"/>, the marker appears shifted by <paramref name="ShiftMm"/> (a loose marker, a bad detection): an outlier stop.</summary>
public sealed record MarkerDisturbance(Vec3 AtTipMm, Vec3 ShiftMm);

/// <summary>
/// The synthetic camera of a simulated machine, seen during the camera-to-gantry calibration: it
/// renders the calibration marker carried by the needle head wherever the simulated gantry has
/// put it, T_CM = T_GC,true⁻¹ · T_GM(tip position + marker offset), through the synthetic intrinsics,
/// lens distortion and sensor noise (<see cref="SyntheticScene.RenderAt"/>). With
/// <see cref="ShowTouchPlate"/> it shows the touch plate lying on the table instead. The truth can
/// be changed at any time (e.g. a camera bumped between calibration and check). Thread-safe for
/// one reader plus setters. Owns the board and the scene: dispose it.
/// </summary>
public sealed class SimulatedGantryMarkerCamera : IFrameSource, ISimulatedTouchPlate
{
    private readonly Func<Vec3> _tipPositionMm;
    private readonly SyntheticScene _scene;
    private readonly SyntheticScene _plateScene;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _lock = new();
    private GantryMarkerTruth _truth;
    private IReadOnlyList<MarkerDisturbance> _disturbances = [];
    private volatile bool _showTouchPlate;
    private long _sequence;

    /// <param name="tipPositionMm">The simulated gantry's true tip position (machine coordinates), mm.</param>
    /// <param name="truth">The physical truth.</param>
    /// <param name="board">The needle-head marker board (taken over: disposed with this).</param>
    /// <param name="plateBoard">The board printed on the touch plate (taken over). A large board (e.g. the 54 × 42 mm intrinsics board) measures the plate's depth better than the small head marker would.</param>
    /// <param name="intrinsics">The camera's true intrinsics; default <see cref="CameraIntrinsics.Synthetic"/>.</param>
    /// <param name="timeProvider">Stamps frames.</param>
    /// <param name="seed">Seeds the scene's texture and noise.</param>
    /// <param name="noiseSigma">Sensor noise, grey levels. Default 2.</param>
    public SimulatedGantryMarkerCamera(Func<Vec3> tipPositionMm, GantryMarkerTruth truth, MarkerBoard board, MarkerBoard plateBoard, CameraIntrinsics? intrinsics, TimeProvider timeProvider, int seed = 7, double noiseSigma = 2.0)
    {
        ArgumentNullException.ThrowIfNull(plateBoard);
        ArgumentNullException.ThrowIfNull(tipPositionMm);
        ArgumentNullException.ThrowIfNull(truth);
        ArgumentNullException.ThrowIfNull(board);
        _tipPositionMm = tipPositionMm;
        _truth = truth;
        Board = board;
        _timeProvider = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        _scene = new SyntheticScene(SyntheticScenario.Still, intrinsics ?? CameraIntrinsics.Synthetic(), board, seed, noiseSigma);
        PlateBoard = plateBoard;
        _plateScene = new SyntheticScene(SyntheticScenario.Still, _scene.Intrinsics, plateBoard, seed + 1, noiseSigma);
    }

    /// <summary>"synthetic-gantry-marker".</summary>
    public string Description => "synthetic-gantry-marker";

    public CameraIntrinsics Intrinsics => _scene.Intrinsics;

    CameraIntrinsics? IFrameSource.Intrinsics => _scene.Intrinsics;

    public bool PacesItself => false;

    public TimeSpan FrameInterval => TimeSpan.FromSeconds(1.0 / 30);

    /// <summary>The needle-head marker board.</summary>
    public MarkerBoard Board { get; }

    public MarkerBoard PlateBoard { get; }

    /// <summary>The physical truth now.</summary>
    public GantryMarkerTruth Truth
    {
        get { lock (_lock) return _truth; }
        set { ArgumentNullException.ThrowIfNull(value); lock (_lock) _truth = value; }
    }

    /// <summary>Marker faults (outlier stops); empty by default.</summary>
    public IReadOnlyList<MarkerDisturbance> Disturbances
    {
        get { lock (_lock) return _disturbances; }
        set { ArgumentNullException.ThrowIfNull(value); lock (_lock) _disturbances = value; }
    }

    public bool ShowTouchPlate
    {
        get => _showTouchPlate;
        set => _showTouchPlate = value;
    }

    /// <summary>The plate's four outermost corners, with their true gantry positions.</summary>
    public IReadOnlyList<TouchPoint> TouchPoints()
    {
        var plate = Truth.GantryFromTouchPlate;
        var cols = PlateBoard.Spec.SquaresX - 1;
        int[] ids = [0, cols - 1, PlateBoard.CornerCount - cols, PlateBoard.CornerCount - 1];
        return [.. ids.Select(id => new TouchPoint(id, plate.Apply(PlateBoard.CornerInHead(id))))];
    }

    /// <summary>What the camera sees now: T_CM of the marker (or T_CP of the plate), true.</summary>
    public RigidTransform TruthCameraFromBoard()
    {
        GantryMarkerTruth truth;
        IReadOnlyList<MarkerDisturbance> disturbances;
        lock (_lock)
        {
            truth = _truth;
            disturbances = _disturbances;
        }
        if (_showTouchPlate) return Rotations.Inverse(truth.GantryFromCamera) * truth.GantryFromTouchPlate;
        var tip = _tipPositionMm();
        var gantryFromMarker = truth.GantryFromMarker(tip);
        foreach (var d in disturbances)
        {
            if (d.AtTipMm.DistanceTo(tip) <= 0.05)
            {
                gantryFromMarker = Rotations.FromMatrix(Rotations.RotationMatrix(gantryFromMarker), gantryFromMarker.Translation + d.ShiftMm);
            }
        }
        return Rotations.Inverse(truth.GantryFromCamera) * gantryFromMarker;
    }

    public Frame Read()
    {
        var ts = _timeProvider.GetTimestamp();
        var pose = TruthCameraFromBoard();
        var seq = Interlocked.Increment(ref _sequence) - 1;
        Mat image = (_showTouchPlate ? _plateScene : _scene).RenderAt(pose, seq);
        return new Frame(image, ts, seq, pose);
    }

    Frame? IFrameSource.Read() => Read();

    public void Dispose()
    {
        _scene.Dispose();
        _plateScene.Dispose();
        Board.Dispose();
        PlateBoard.Dispose();
    }
}
