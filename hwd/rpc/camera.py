"""The hwd.v1.Camera servicer, and the camera's model <-> protobuf converters (round-trip tested)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from hwd.errors import InvalidArgument
from hwd.model import AppliedSetting, CameraSettings, ImageFormat, InspectionSignals, PreviewFrame, Signal, Still
from hwd.rpc.convert import device_status, ts
from hwd.rpc.pb.hwd.v1 import camera_pb2, camera_pb2_grpc
from hwd.services.camera import CameraService

Ctx = aio.ServicerContext[Any, Any]

_FORMATS: dict[int, ImageFormat] = {
    camera_pb2.IMAGE_FORMAT_UNSPECIFIED: ImageFormat.JPEG,
    camera_pb2.IMAGE_FORMAT_JPEG: ImageFormat.JPEG,
    camera_pb2.IMAGE_FORMAT_PNG: ImageFormat.PNG,
}
_FORMATS_PB: dict[ImageFormat, camera_pb2.ImageFormat.ValueType] = {
    ImageFormat.JPEG: camera_pb2.IMAGE_FORMAT_JPEG,
    ImageFormat.PNG: camera_pb2.IMAGE_FORMAT_PNG,
}
# CameraSettings fields, in the order of camera.proto; each is optional there and None in the model.
_SETTING_FIELDS = (
    "width", "height", "fps", "auto_exposure", "exposure", "auto_focus", "focus", "auto_white_balance",
    "white_balance_k",
)  # fmt: skip
_SIGNAL_FIELDS = ("orientation_deg", "length_px", "width_px", "length_mm", "width_mm", "screen_on", "crack_score")


def settings_from_pb(msg: camera_pb2.CameraSettings) -> CameraSettings:
    """The settings a request asks for: a field the request leaves out is None (keep what the camera has)."""
    values = {field.name: value for field, value in msg.ListFields()}  # the fields the request has
    return CameraSettings(**values)


def settings_to_pb(settings: CameraSettings) -> camera_pb2.CameraSettings:
    """CameraSettings to protobuf, setting only the fields that are not None."""
    values = {name: getattr(settings, name) for name in _SETTING_FIELDS if getattr(settings, name) is not None}
    return camera_pb2.CameraSettings(**values)


def format_from_pb(value: int) -> ImageFormat:
    """The image format a request asks for: JPEG when unspecified.

    :raises InvalidArgument: naming ``format`` for a value this daemon does not know.
    """
    found = _FORMATS.get(value)
    if found is None:
        raise InvalidArgument(f"format: {value} is not JPEG or PNG", metadata={"field": "format"})
    return found


def format_to_pb(fmt: ImageFormat) -> camera_pb2.ImageFormat.ValueType:
    """ImageFormat to protobuf."""
    return _FORMATS_PB[fmt]


def applied_to_pb(setting: AppliedSetting) -> camera_pb2.AppliedSetting:
    """AppliedSetting to protobuf."""
    return camera_pb2.AppliedSetting(
        name=setting.name, requested=setting.requested, actual=setting.actual, applied=setting.applied,
        detail=setting.detail,
    )  # fmt: skip


def applied_from_pb(msg: camera_pb2.AppliedSetting) -> AppliedSetting:
    """Protobuf to AppliedSetting."""
    return AppliedSetting(msg.name, msg.requested, msg.actual, msg.applied, msg.detail)


def image_to_pb(still: Still) -> camera_pb2.Image:
    """A still as the API shows it."""
    return camera_pb2.Image(
        data=still.data, format=format_to_pb(still.format), width=still.width, height=still.height,
        sha256=still.sha256, captured=ts(still.captured_ns), settings=[applied_to_pb(s) for s in still.settings],
        evidence_id=still.evidence_id,
    )  # fmt: skip


def image_from_pb(msg: camera_pb2.Image) -> Still:
    """Protobuf to Still (an unspecified format reads as JPEG)."""
    return Still(
        msg.data, format_from_pb(msg.format), msg.width, msg.height, msg.sha256, msg.captured.ToNanoseconds(),
        tuple(applied_from_pb(s) for s in msg.settings), msg.evidence_id,
    )  # fmt: skip


def preview_to_pb(frame: PreviewFrame) -> camera_pb2.PreviewFrame:
    """PreviewFrame to protobuf."""
    return camera_pb2.PreviewFrame(
        jpeg=frame.jpeg, width=frame.width, height=frame.height, sequence=frame.sequence,
        captured=ts(frame.captured_ns),
    )  # fmt: skip


def preview_from_pb(msg: camera_pb2.PreviewFrame) -> PreviewFrame:
    """Protobuf to PreviewFrame."""
    return PreviewFrame(msg.jpeg, msg.width, msg.height, msg.sequence, msg.captured.ToNanoseconds())


def signal_to_pb(signal: Signal) -> camera_pb2.Signal:
    """A signal with its value in the oneof member of its kind: ``flag`` for a bool, ``number`` otherwise."""
    if isinstance(signal.value, bool):  # before the number test: a bool is an int too
        return camera_pb2.Signal(flag=signal.value, confidence=signal.confidence)
    return camera_pb2.Signal(number=float(signal.value), confidence=signal.confidence)


def signal_from_pb(msg: camera_pb2.Signal) -> Signal:
    """Protobuf to Signal; a signal without a value reads as the number 0 (what proto3 gives for it)."""
    if msg.WhichOneof("value") == "flag":
        return Signal(msg.flag, msg.confidence)
    return Signal(msg.number, msg.confidence)


def signals_to_pb(signals: InspectionSignals) -> camera_pb2.InspectionSignals:
    """InspectionSignals to protobuf; a signal that is None stays unset."""
    msg = camera_pb2.InspectionSignals(
        phone_present=signal_to_pb(signals.phone_present),
        outline=[camera_pb2.Point(x=x, y=y) for x, y in signals.outline],
    )
    for name in _SIGNAL_FIELDS:
        value: Signal | None = getattr(signals, name)
        if value is not None:
            getattr(msg, name).CopyFrom(signal_to_pb(value))
    return msg


def signals_from_pb(msg: camera_pb2.InspectionSignals) -> InspectionSignals:
    """Protobuf to InspectionSignals; an unset signal is None (``phone_present`` reads as absent, no confidence)."""
    present = signal_from_pb(msg.phone_present) if msg.HasField("phone_present") else Signal(False, 0.0)
    optional = {field.name: signal_from_pb(value) for field, value in msg.ListFields() if field.name in _SIGNAL_FIELDS}
    return InspectionSignals(present, tuple((p.x, p.y) for p in msg.outline), **optional)


class CameraServicer(camera_pb2_grpc.CameraServicer):
    """Serves the Camera service from a :class:`CameraService`."""

    def __init__(self, camera: CameraService) -> None:
        self._camera = camera

    async def GetStatus(
        self, request: camera_pb2.GetCameraStatusRequest, context: Ctx
    ) -> camera_pb2.GetCameraStatusResponse:
        camera = self._camera
        info = camera.info()
        return camera_pb2.GetCameraStatusResponse(
            status=device_status(camera.registry, camera.name), source=info.source, width=info.width,
            height=info.height, settings=[applied_to_pb(s) for s in info.settings],
            evidence_count=info.evidence_count,
        )  # fmt: skip

    async def Capture(self, request: camera_pb2.CaptureRequest, context: Ctx) -> camera_pb2.CaptureResponse:
        settings = settings_from_pb(request.settings)
        fmt = format_from_pb(request.format)
        # The service reads a quality of 0 as its default and names a quality out of range.
        still = await self._camera.capture(settings, fmt, request.quality, request.port)
        return camera_pb2.CaptureResponse(image=image_to_pb(still))

    async def Preview(self, request: camera_pb2.PreviewRequest, context: Ctx) -> AsyncIterator[camera_pb2.PreviewFrame]:
        async for frame in self._camera.preview(request.max_fps, request.quality):
            yield preview_to_pb(frame)

    async def Inspect(self, request: camera_pb2.InspectRequest, context: Ctx) -> camera_pb2.InspectResponse:
        still, signals, compute_ms = await self._camera.inspect(settings_from_pb(request.settings), request.port)
        return camera_pb2.InspectResponse(
            image=image_to_pb(still), signals=signals_to_pb(signals), compute_ms=compute_ms
        )
