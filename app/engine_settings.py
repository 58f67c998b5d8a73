"""Engine > Settings: how STARFlow-V checkpoints load (memory preset, offload, attention window,
aspect ratio, config, parts) and their guidance default. A view over EngineOptions: built from
one, `options()` reads the choice back; the caller keeps it (GenerationController)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .state.engine_presets import (
    ASPECT_RATIOS,
    AUTO,
    CUSTOM,
    PRESETS,
    EngineOptions,
    preset_for,
)


class EngineSettingsDialog(QDialog):
    def __init__(
        self, options: EngineOptions, gpu_bytes: int | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Engine settings")
        self.gpu_bytes = gpu_bytes
        self._filling = False

        self.preset = QComboBox()
        found = preset_for(gpu_bytes)
        card = f"this card: {found.name}" if found else "no GPU found"
        self.preset.addItem(f"Automatic ({card})", AUTO)
        for p in PRESETS:
            self.preset.addItem(p.name, p.name)
        self.preset.addItem("Custom", CUSTOM)
        self.offload = QCheckBox("Keep shallow blocks and the denoiser in CPU memory")
        self.vae_on_cpu = QCheckBox("Encode and decode video on the CPU (slower, less GPU memory)")
        self.window = QSpinBox()
        self.window.setRange(0, 256)
        self.window.setSpecialValueText("whole clip")
        self.window.setSuffix(" latent frames")
        self.aspect = QComboBox()
        self.aspect.addItems(ASPECT_RATIOS)
        self.config = QLineEdit()
        self.config.setPlaceholderText("beside the checkpoint, else the 7B's")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_config)
        config_row = QHBoxLayout()
        config_row.addWidget(self.config, 1)
        config_row.addWidget(browse)
        self.text_encoder = QLineEdit()
        self.text_encoder.setPlaceholderText("the config's (7B: google/flan-t5-xl)")
        self.vae = QLineEdit()
        self.vae.setPlaceholderText("the config's (7B: Wan-AI/Wan2.2-TI2V-5B-Diffusers)")
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 20.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(2)

        form = QFormLayout()
        form.addRow("GPU memory preset", self.preset)
        form.addRow("Offload", self.offload)
        form.addRow("Attention window", self.window)
        form.addRow("Video VAE", self.vae_on_cpu)
        form.addRow("Aspect ratio", self.aspect)
        form.addRow("Model config", config_row)
        form.addRow("Text encoder", self.text_encoder)
        form.addRow("Video VAE", self.vae)
        form.addRow("Guidance default", self.guidance)
        note = QLabel(
            "For STARFlow-V checkpoints (the demo model ignores these); changing them reloads the"
            " model. The presets are the current estimate of what fits a 5-second 480p clip with"
            " guidance."
        )
        note.setWordWrap(True)
        self.buttons = buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

        self._show(options)
        self.preset.currentIndexChanged.connect(self._on_preset)
        self.offload.toggled.connect(self._on_memory_edited)
        self.window.valueChanged.connect(self._on_memory_edited)
        self.vae_on_cpu.toggled.connect(self._on_memory_edited)

    def _show(self, o: EngineOptions) -> None:
        self._filling = True
        self.preset.setCurrentIndex(max(self.preset.findData(o.preset), 0))
        self._fill_memory(o)
        self.aspect.setCurrentText(o.aspect_ratio)
        self.config.setText(o.config)
        self.text_encoder.setText(o.text_encoder)
        self.vae.setText(o.vae)
        self.guidance.setValue(o.guidance)
        self._filling = False

    def _fill_memory(self, o: EngineOptions) -> None:
        """Offload, window and the VAE's place as the chosen preset sets them on this card."""
        memory = o.memory(self.gpu_bytes)
        self.offload.setChecked(bool(memory and memory.offload))
        self.window.setValue((memory and memory.window) or 0)
        self.vae_on_cpu.setChecked(bool(memory and memory.vae_on_cpu))

    def _on_preset(self) -> None:
        if self._filling:
            return
        self._filling = True
        self._fill_memory(self.options())
        self._filling = False

    def _on_memory_edited(self) -> None:
        """Offload or window set by hand: the preset becomes Custom."""
        if not self._filling:
            self._filling = True
            self.preset.setCurrentIndex(self.preset.findData(CUSTOM))
            self._filling = False

    def _browse_config(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model config", self.config.text(), "Model configs (*.yaml *.yml *.json)"
        )
        if path:
            self.config.setText(path)

    def options(self) -> EngineOptions:
        """The options as the dialog shows them."""
        return EngineOptions(
            preset=self.preset.currentData(),
            offload=self.offload.isChecked(),
            window=self.window.value(),
            vae_on_cpu=self.vae_on_cpu.isChecked(),
            aspect_ratio=self.aspect.currentText(),
            config=self.config.text().strip(),
            text_encoder=self.text_encoder.text().strip(),
            vae=self.vae.text().strip(),
            guidance=self.guidance.value(),
        )
