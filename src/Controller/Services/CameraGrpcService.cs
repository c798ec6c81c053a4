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

    /// <summary>Largest board JSON text accepted (as a board file).</summary>
    public const int MaxBoardJsonChars = 64 * 1024;

    /// <summary>PNG resolution when the request gives none.</summary>
    public const int DefaultDpi = 600;

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

    public override Task<BoardPicture> RenderBoard(RenderBoardRequest request, ServerCallContext context)
    {
        var boardsDirectory = BoardsDirectory();
        if (request.Format is not (BoardFormat.Unspecified or BoardFormat.Png or BoardFormat.Pdf))
        {
            throw Invalid($"unknown board format {(int)request.Format}: PNG or PDF");
        }
        var pdf = request.Format == BoardFormat.Pdf;
        var dpi = request.Dpi == 0 ? DefaultDpi : request.Dpi;
        if (!pdf && dpi is < BoardPage.MinDpi or > BoardPage.MaxDpi)
        {
            throw Invalid($"dpi must be {BoardPage.MinDpi}..{BoardPage.MaxDpi} (0 = {DefaultDpi}), not {request.Dpi}");
        }
        if (request.BoardCase == RenderBoardRequest.BoardOneofCase.BoardJson && request.BoardJson.Length > MaxBoardJsonChars)
        {
            throw Invalid($"the board text is longer than {MaxBoardJsonChars} characters");
        }
        try
        {
            using var board = request.BoardCase switch
            {
                RenderBoardRequest.BoardOneofCase.Name => BoardFiles.Load(boardsDirectory, request.Name),
                RenderBoardRequest.BoardOneofCase.BoardJson => BoardPage.ParseBoard(request.BoardJson),
                _ => throw new ArgumentException("give a board name or a board file's JSON text: " + BoardFiles.AvailableText(boardsDirectory)),
            };
            var page = BoardPage.For(board);
            var reply = new BoardPicture
            {
                Format = pdf ? BoardFormat.Pdf : BoardFormat.Png,
                BoardName = board.Spec.Name,
                BoardDescription = page.Description,
                BoardWidthMm = page.BoardWidthMm,
                BoardHeightMm = page.BoardHeightMm,
                PageWidthMm = page.PageWidthMm,
                PageHeightMm = page.PageHeightMm,
                ScaleBarMm = page.ScaleBarMm,
                PrintNote = page.PrintNote(pdf ? 0 : dpi),
                MeasureHint = page.MeasureHint,
            };
            byte[] data;
            if (pdf)
            {
                data = BoardPdf.Write(page);
            }
            else
            {
                data = page.ToPng(dpi, out var size);
                reply.WidthPx = size.Width;
                reply.HeightPx = size.Height;
                reply.Dpi = dpi;
            }
            if (data.Length > MaxPictureBytes)
            {
                throw Invalid($"the {(pdf ? "PDF" : "PNG")} would be {data.Length / 1024} KiB, more than the {MaxPictureBytes / 1024} KiB a reply may carry: {(pdf ? "the board is too large" : "use a lower dpi or the PDF")}");
            }
            reply.Data = ByteString.CopyFrom(data);
            return Task.FromResult(reply);
        }
        catch (ArgumentException e)
        {
            // Bad names, bad JSON (JsonException is one), unusable boards, dpi too high for the page.
            var detail = e.ParamName is null ? e.Message : e.Message.Split(" (Parameter", 2)[0];
            if (e is not ArgumentOutOfRangeException && !detail.Contains("available boards", StringComparison.Ordinal) && request.BoardCase != RenderBoardRequest.BoardOneofCase.Name)
            {
                detail += "; " + BoardFiles.AvailableText(boardsDirectory);
            }
            throw Invalid(detail);
        }
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
