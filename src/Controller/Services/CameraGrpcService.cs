using Google.Protobuf;
using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Services;

/// <summary>smprobot.v1.CameraService: the tracker's preview and printable marker boards.</summary>
internal sealed class CameraGrpcService(IHeadPoseSource headPose) : CameraService.CameraServiceBase
{
    /// <summary>Largest picture sent (3.5 MiB), leaving room under gRPC's default 4 MB receive limit.</summary>
    public const int MaxPictureBytes = 3584 * 1024;

    public override Task<CameraPreview> GetPreview(GetPreviewRequest request, ServerCallContext context)
    {
        if (headPose is not TrackedHeadPoseSource tracked)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"the controller has no camera (head pose: {headPose.Description}, e.g. a practice pad); start it with a camera to see a preview"));
        }
        // Read the picture first: a frame arriving in between only makes the counts newer than the picture.
        var png = tracked.PreviewPng();
        var snapshot = tracked.Snapshot();
        if (png is null || snapshot is null)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"the camera ({tracked.Description}) has not delivered a frame yet; try again in a moment"));
        }
        png = PngImages.FitWithin(png, MaxPictureBytes, out var downscaled);
        var size = PngImages.SizeOf(png);
        var reply = new CameraPreview
        {
            Png = ByteString.CopyFrom(png),
            WidthPx = size.Width,
            HeightPx = size.Height,
            Downscaled = downscaled,
            Camera = snapshot.Camera,
            BoardFound = snapshot.BoardFound,
            MarkersSeen = snapshot.MarkersSeen,
            CornersSeen = snapshot.CornersSeen,
            Quality = snapshot.Quality,
            FramesProcessed = snapshot.FramesProcessed,
            FramesLost = snapshot.FramesLost,
            Jerks = snapshot.Jerks,
            // On the tracker's clock (simulated time for a synthetic camera), like the gates.
            FrameAgeMs = tracked.Clock.GetElapsedTime(snapshot.FrameTimestamp).TotalMilliseconds,
            Intrinsics = snapshot.Intrinsics,
            FrameSequence = snapshot.FrameSequence,
        };
        if (snapshot.RawCameraFromHead is { } cameraFromHead) reply.CameraFromHead = Mapping.ToProto(cameraFromHead);
        if (double.IsFinite(snapshot.ReprojectionErrorPx)) reply.ReprojectionErrorPx = snapshot.ReprojectionErrorPx;
        if (double.IsFinite(snapshot.HeadSpeedMmPerS)) reply.HeadSpeedMmPerS = snapshot.HeadSpeedMmPerS;
        return Task.FromResult(reply);
    }

    /// <summary>A thin mapping of <see cref="BoardPrint.Render"/> (the console renders a local board file with the same function).</summary>
    public override Task<BoardPicture> RenderBoard(RenderBoardRequest request, ServerCallContext context)
    {
        var boardsDirectory = BoardsDirectory();
        var format = request.Format switch
        {
            BoardFormat.Unspecified or BoardFormat.Png => BoardPrintFormat.Png,
            BoardFormat.Pdf => BoardPrintFormat.Pdf,
            _ => throw Invalid($"unknown board format {(int)request.Format}: PNG or PDF"),
        };
        var source = request.BoardCase switch
        {
            RenderBoardRequest.BoardOneofCase.Name => BoardSource.Named(boardsDirectory, request.Name),
            RenderBoardRequest.BoardOneofCase.BoardJson => BoardSource.FromJson(request.BoardJson, boardsDirectory),
            _ => throw Invalid("give a board name or a board file's JSON text: " + BoardFiles.AvailableText(boardsDirectory)),
        };
        BoardPrintout printout;
        try
        {
            printout = BoardPrint.Render(source, format, request.Dpi);
        }
        catch (BoardPrintException e)
        {
            throw Invalid(e.Message);
        }
        var pdf = printout.Format == BoardPrintFormat.Pdf;
        if (printout.Data.Length > MaxPictureBytes)
        {
            throw Invalid($"the {(pdf ? "PDF" : "PNG")} would be {printout.Data.Length / 1024} KiB, more than the {MaxPictureBytes / 1024} KiB a reply may carry: {(pdf ? "the board is too large" : "use a lower dpi or the PDF")}");
        }
        return Task.FromResult(ToProto(printout));
    }

    /// <summary>The reply of a rendered board (the console builds the same message from its own rendering of a local file).</summary>
    private static BoardPicture ToProto(BoardPrintout p)
    {
        return new BoardPicture
        {
            Format = p.Format == BoardPrintFormat.Pdf ? BoardFormat.Pdf : BoardFormat.Png,
            BoardName = p.BoardName,
            BoardDescription = p.BoardDescription,
            BoardWidthMm = p.BoardWidthMm,
            BoardHeightMm = p.BoardHeightMm,
            PageWidthMm = p.PageWidthMm,
            PageHeightMm = p.PageHeightMm,
            ScaleBarMm = p.ScaleBarMm,
            PrintNote = p.PrintNote,
            MeasureHint = p.MeasureHint,
            WidthPx = p.WidthPx,
            HeightPx = p.HeightPx,
            Dpi = p.Dpi,
            Data = ByteString.CopyFrom(p.Data),
        };
    }

    private static string BoardsDirectory()
    {
        try
        {
            return Path.Combine(HardwarePaths.HardwareDirectory(), "boards");
        }
        catch (InvalidDataException e)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
        }
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
