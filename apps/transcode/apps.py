from django.apps import AppConfig


class TranscodeConfig(AppConfig):
    name = "apps.transcode"
    label = "transcode"
    verbose_name = "Transcoding"

    def ready(self) -> None:
        from apps.content.signals import source_ready
        from apps.transcode.receivers import source_ready_received

        source_ready.connect(source_ready_received, dispatch_uid="transcode.source_ready")
